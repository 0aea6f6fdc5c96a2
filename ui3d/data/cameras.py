"""Camera sampling as threestudio's random-camera data module, and DreamFusion's view-dependent prompts.

World is z-up, objects at the origin. A camera at elevation θ, azimuth φ (degrees) and distance d sits at
d·(cos θ cos φ, cos θ sin φ, sin θ) and looks at the origin; c2w is OpenGL-style (columns right, up, −look,
position), so azimuth 0 looks at the object's front from +x. fovy is stored in radians, like threestudio.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class CameraConfig:
    """Ranges of the random cameras (threestudio's `RandomCameraDataModuleConfig` names)."""

    elevation_range: tuple[float, float] = (-10.0, 45.0)
    """Elevation in degrees (threestudio's default is [−10, 90]; its DreamFusion configs use [−10, 45])."""
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    """Azimuth in degrees."""
    camera_distance_range: tuple[float, float] = (1.0, 1.5)
    """Distance to the origin, in units of the object diameter (objects fit in a sphere of radius 0.5)."""
    fovy_range: tuple[float, float] = (40.0, 70.0)
    """Vertical field of view in degrees."""
    batch_uniform_azimuth: bool = True
    """Stratify azimuths within a batch (threestudio's default)."""
    camera_perturb: float = 0.0
    """Uniform jitter of the camera position (threestudio's default 0.1; 0 keeps objects centred)."""
    center_perturb: float = 0.0
    """Gaussian jitter (std) of the look-at point (threestudio's default 0.2)."""
    up_perturb: float = 0.0
    """Gaussian jitter (std) of the up vector (threestudio's default 0.02)."""


@dataclass
class CameraBatch:
    """B cameras. Angles in degrees except fovy (radians, as threestudio's batches)."""

    c2w: Tensor
    """[B, 4, 4] camera-to-world matrices (OpenGL: the camera looks along −z)."""
    fovy: Tensor
    """[B] vertical field of view in radians."""
    elevation_deg: Tensor
    """[B] elevation in degrees."""
    azimuth_deg: Tensor
    """[B] azimuth in degrees, in [−180, 180)."""
    camera_distances: Tensor
    """[B] distance from the origin."""

    @property
    def camera_positions(self) -> Tensor:
        """[B, 3] camera centres in world space."""
        return self.c2w[:, :3, 3]

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index: int | slice | Tensor) -> CameraBatch:
        index = torch.arange(len(self))[index].reshape(-1)
        return CameraBatch(self.c2w[index], self.fovy[index], self.elevation_deg[index],
                           self.azimuth_deg[index], self.camera_distances[index])


def spherical_to_position(elevation_deg: Tensor, azimuth_deg: Tensor, distance: Tensor) -> Tensor:
    """Camera centres [B, 3] at (elevation, azimuth, distance), z-up."""
    elevation, azimuth = torch.deg2rad(elevation_deg), torch.deg2rad(azimuth_deg)
    return torch.stack([distance * torch.cos(elevation) * torch.cos(azimuth),
                        distance * torch.cos(elevation) * torch.sin(azimuth),
                        distance * torch.sin(elevation)], dim=-1)


def look_at(position: Tensor, center: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """OpenGL camera-to-world matrices [B, 4, 4] for cameras at `position` [B, 3] looking at `center` [B, 3]
    (default the origin) with `up` [B, 3] (default +z), as threestudio builds them."""
    center = torch.zeros_like(position) if center is None else center
    up = position.new_tensor([0.0, 0.0, 1.0]).expand_as(position) if up is None else up
    lookat = torch.nn.functional.normalize(center - position, dim=-1)
    right = torch.nn.functional.normalize(torch.linalg.cross(lookat, up, dim=-1), dim=-1)
    up = torch.nn.functional.normalize(torch.linalg.cross(right, lookat, dim=-1), dim=-1)
    c2w = torch.eye(4, dtype=position.dtype).repeat(len(position), 1, 1)
    c2w[:, :3, :3] = torch.stack([right, up, -lookat], dim=-1)
    c2w[:, :3, 3] = position
    return c2w


def make_cameras(elevation_deg: Tensor, azimuth_deg: Tensor, distance: Tensor, fovy_deg: Tensor) -> CameraBatch:
    """Cameras looking at the origin from the given spherical coordinates (all [B], degrees)."""
    position = spherical_to_position(elevation_deg, azimuth_deg, distance)
    azimuth = torch.remainder(azimuth_deg + 180.0, 360.0) - 180.0
    return CameraBatch(look_at(position), torch.deg2rad(fovy_deg), elevation_deg, azimuth, distance)


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator) * (bounds[1] - bounds[0]) + bounds[0]


def sample_elevation(n: int, bounds: tuple[float, float], generator: torch.Generator | None = None) -> Tensor:
    """Elevations (degrees) as threestudio: uniform in degrees or, with probability ½ per batch, uniform on
    the sphere's zone between the bounds."""
    if torch.rand(1, generator=generator).item() < 0.5:
        return _uniform(n, bounds, generator)
    lo, hi = ((b + 90.0) / 180.0 for b in bounds)
    return torch.rad2deg(torch.asin(2 * _uniform(n, (lo, hi), generator) - 1.0))


def sample_cameras(n: int, cfg: CameraConfig | None = None, generator: torch.Generator | None = None) -> CameraBatch:
    """A batch of n random cameras looking at the origin, with threestudio's sampling rules."""
    cfg = cfg or CameraConfig()
    elevation = sample_elevation(n, cfg.elevation_range, generator)
    lo, hi = cfg.azimuth_range
    if cfg.batch_uniform_azimuth:
        azimuth = (torch.rand(n, generator=generator) + torch.arange(n)) / n * (hi - lo) + lo
    else:
        azimuth = _uniform(n, cfg.azimuth_range, generator)
    distance = _uniform(n, cfg.camera_distance_range, generator)
    fovy = _uniform(n, cfg.fovy_range, generator)
    cams = make_cameras(elevation, azimuth, distance, fovy)
    if cfg.camera_perturb or cfg.center_perturb or cfg.up_perturb:
        position = cams.camera_positions + (torch.rand(n, 3, generator=generator) * 2 - 1) * cfg.camera_perturb
        center = torch.randn(n, 3, generator=generator) * cfg.center_perturb
        up = torch.tensor([0.0, 0.0, 1.0]) + torch.randn(n, 3, generator=generator) * cfg.up_perturb
        cams.c2w = look_at(position, center, up)
    return cams


def orbit_cameras(n_views: int, elevation_deg: float = 15.0, distance: float = 1.5, fovy_deg: float = 70.0
                  ) -> CameraBatch:
    """A turntable of n_views cameras at fixed elevation, azimuth 0, 360/n, … (threestudio's eval defaults:
    elevation 15°, distance 1.5, fovy 70°)."""
    azimuth = torch.arange(n_views, dtype=torch.float32) * (360.0 / n_views)
    full = torch.ones(n_views)
    return make_cameras(elevation_deg * full, azimuth, distance * full, fovy_deg * full)


DIRECTIONS: tuple[str, ...] = ("front", "side", "back", "overhead")
"""View directions of the view-dependent prompts."""


def view_direction(elevation_deg: Tensor, azimuth_deg: Tensor, front_threshold: float = 45.0,
                   back_threshold: float = 45.0, overhead_threshold: float = 60.0) -> list[str]:
    """threestudio's prompt-processor rule, later rules winning: side by default; front if |φ| < front_threshold;
    back if |φ| > 180 − back_threshold; overhead if θ > overhead_threshold (φ shifted into [−180, 180))."""
    azimuth = torch.remainder(azimuth_deg + 180.0, 360.0) - 180.0
    index = torch.ones_like(azimuth, dtype=torch.long)
    index[(azimuth > -front_threshold) & (azimuth < front_threshold)] = 0
    index[(azimuth > 180.0 - back_threshold) | (azimuth < -180.0 + back_threshold)] = 2
    index[elevation_deg > overhead_threshold] = 3
    return [DIRECTIONS[i] for i in index.tolist()]


def view_prompt(prompt: str, direction: str) -> str:
    """DreamFusion's view-dependent prompt: "a red striped vase" + "side" → "a red striped vase, side view"."""
    if direction not in DIRECTIONS:
        raise KeyError(f"unknown view direction {direction!r}; known: {', '.join(DIRECTIONS)}")
    return f"{prompt}, {direction} view"

