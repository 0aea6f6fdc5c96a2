"""threestudio's random-camera data module: a fresh random camera batch per training step, a fixed orbit for
validation and for the test turntable. Batches carry rays, cameras and point-light positions."""
from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from ui3d import register
from ui3d.data.cameras import CameraBatch, CameraConfig, orbit_cameras, sample_cameras
from ui3d.renderers.rasterizer import get_rays
from ui3d.renderers.shading import camera_light
from ui3d.training import mix_seed


@dataclass
class RandomCameraConfig:
    batch_size: int = 1
    """Views per training step."""
    width: int = 64
    """Training render width (pixels)."""
    height: int = 64
    """Training render height (pixels)."""
    eval_width: int = 64
    """Validation / test render width."""
    eval_height: int = 64
    """Validation / test render height."""
    camera_distance_range: list = field(default_factory=lambda: [1.0, 1.5])
    """Camera distance range (objects fit a sphere of radius 0.5)."""
    fovy_range: list = field(default_factory=lambda: [40.0, 70.0])
    """Vertical field of view range, degrees."""
    elevation_range: list = field(default_factory=lambda: [-10.0, 45.0])
    """Elevation range, degrees."""
    azimuth_range: list = field(default_factory=lambda: [-180.0, 180.0])
    """Azimuth range, degrees."""
    batch_uniform_azimuth: bool = True
    """Stratify azimuths within a batch."""
    light_sample_strategy: str = "dreamfusion"
    """`dreamfusion` (threestudio's: a point light towards the camera direction, perturbed, at a random
    distance; a light at the camera for validation and test) or `camera`: a distant light fixed in each camera's
    frame at `light_direction`, in training and evaluation alike (how the embedded teacher's renders are lit)."""
    light_distance_range: list = field(default_factory=lambda: [0.8, 1.5])
    """Point light distance from the origin (`dreamfusion`)."""
    light_position_perturb: float = 1.0
    """Std of the random offset of the light direction from the camera direction (`dreamfusion`)."""
    light_direction: list = field(default_factory=lambda: [-0.4, 0.6, 1.0])
    """`camera`: direction to the light in the camera's frame (x right, y up, z backwards): upper left, in
    front of the object (the embedded teacher's `camera_light`)."""
    eval_camera_distance: float = 1.3
    """Orbit distance for validation and test."""
    eval_elevation_deg: float = 15.0
    """Orbit elevation."""
    eval_fovy_deg: float = 55.0
    """Orbit field of view."""
    n_val_views: int = 4
    """Views rendered at each validation."""
    n_test_views: int = 30
    """Frames of the test turntable."""
    seed: int = 0
    """Seed of the camera stream (step i uses seed and i, so a resumed run sees the same cameras)."""


CAMERA_LIGHT_DISTANCE = 100.0
"""Distance of the `camera` strategy's point light: far enough to light like a directional light."""


def light_positions(cams: CameraBatch, cfg: RandomCameraConfig, generator: torch.Generator | None,
                    evaluation: bool = False) -> torch.Tensor:
    """Light positions [B, 3] by `cfg.light_sample_strategy`: `dreamfusion` (threestudio: at a random distance,
    towards the camera direction perturbed by a Gaussian; at the camera in evaluation) or `camera`."""
    if cfg.light_sample_strategy == "camera":
        return camera_light(cams.c2w, tuple(cfg.light_direction)) * CAMERA_LIGHT_DISTANCE
    if cfg.light_sample_strategy != "dreamfusion":
        raise ValueError(f"unknown light_sample_strategy '{cfg.light_sample_strategy}'; expected dreamfusion or camera")
    if evaluation:
        return cams.camera_positions.clone()
    n = len(cams)
    direction = torch.nn.functional.normalize(
        cams.camera_positions + torch.randn(n, 3, generator=generator) * cfg.light_position_perturb, dim=-1
    )
    lo, hi = cfg.light_distance_range
    return direction * (torch.rand(n, 1, generator=generator) * (hi - lo) + lo)


def camera_batch(cams: CameraBatch, lights: torch.Tensor, height: int, width: int) -> dict:
    """The dict every system consumes."""
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, height, width)
    return {"rays_o": rays_o, "rays_d": rays_d, "c2w": cams.c2w, "fovy": cams.fovy,
            "elevation": cams.elevation_deg, "azimuth": cams.azimuth_deg, "camera_distances": cams.camera_distances,
            "light_positions": lights, "height": height, "width": width}


class RandomCameraDataset(Dataset):
    """Item i is the whole random batch of training step `start + i` (deterministic in seed and step). A resumed
    run starts at its checkpoint's step and sees the cameras an uninterrupted run would: Lightning restarts a
    loader from its first item but counts the epoch's batches on from the checkpoint, so the length stays
    `n_steps` and the items are shifted instead."""

    def __init__(self, cfg: RandomCameraConfig, n_steps: int, start: int = 0, rank: int = 0, world_size: int = 1):
        self.cfg, self.n_steps, self.start, self.rank, self.world_size = cfg, n_steps, start, rank, world_size
        self.camera_cfg = CameraConfig(
            elevation_range=tuple(cfg.elevation_range), azimuth_range=tuple(cfg.azimuth_range),
            camera_distance_range=tuple(cfg.camera_distance_range), fovy_range=tuple(cfg.fovy_range),
            batch_uniform_azimuth=cfg.batch_uniform_azimuth,
        )

    def __len__(self) -> int:
        return self.n_steps

    def __getitem__(self, index: int) -> dict:
        step = self.start + index  # DDP: rank r of w renders the views of stream item step * w + r
        g = torch.Generator().manual_seed(mix_seed(self.cfg.seed, step * self.world_size + self.rank))
        cams = sample_cameras(self.cfg.batch_size, self.camera_cfg, g)
        return camera_batch(cams, light_positions(cams, self.cfg, g), self.cfg.height, self.cfg.width)


class OrbitDataset(Dataset):
    """One orbit camera per item, lit by `light_positions` in evaluation."""

    def __init__(self, cfg: RandomCameraConfig, n_views: int):
        self.cfg, self.cams = cfg, orbit_cameras(n_views, cfg.eval_elevation_deg, cfg.eval_camera_distance,
                                                 cfg.eval_fovy_deg)

    def __len__(self) -> int:
        return len(self.cams)

    def __getitem__(self, index: int) -> dict:
        cams = self.cams[index]
        batch = camera_batch(cams, light_positions(cams, self.cfg, None, evaluation=True), self.cfg.eval_height,
                             self.cfg.eval_width)
        return {**batch, "index": index}


@register("random-camera-datamodule")
class RandomCameraDataModule(L.LightningDataModule):
    """Training: `n_steps` random batches; validation: `n_val_views` orbit views; test: the turntable."""

    Config = RandomCameraConfig

    def __init__(self, cfg: RandomCameraConfig, n_steps: int):
        super().__init__()
        self.cfg, self.n_steps = cfg, n_steps

    def train_dataloader(self) -> DataLoader:
        # Lightning restores a checkpoint before it asks for the loader: a resumed fit continues at its step
        trainer = self.trainer
        start, rank, world = (trainer.global_step, trainer.global_rank, trainer.world_size) if trainer else (0, 0, 1)
        return DataLoader(RandomCameraDataset(self.cfg, self.n_steps, start, rank, world), batch_size=None,
                          shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(OrbitDataset(self.cfg, self.cfg.n_val_views), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(OrbitDataset(self.cfg, self.cfg.n_test_views), batch_size=None)
