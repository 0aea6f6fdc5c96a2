"""Training data of the embedded teacher: renders of procedural objects with view-dependent prompts (DESIGN.md §6).

Each sample draws an object (uniform category, then variant, colour, pattern) and one camera from the
distribution stage 1 samples (`ui3d.data.cameras.CameraConfig`: distance 1.0–1.5, fovy 40–70°, elevation
−10–45°, azimuth −180–180°), renders it with the pure-PyTorch rasterizer (Lambert + ambient, light from the
camera's upper left, white background, `supersample`² samples per pixel) and builds the prompt
"a red striped vase, side view". With probability `normal_map_prob` a sample is instead the object's normal map
((n + 1)/2 of the world-space normals over the background, as `mesh-rasterizer`'s `comp_normal_vis`), prompted
"a normal map of a vase, side view": the style a geometry stage guides. Images are float tensors [3, H, W]
**in [0, 1]** (map to [−1, 1] with 2x − 1 for a diffusion model). Sample i of a split is a pure function of (seed, split, i): the "val" and "test" splits
are fixed held-out sets drawn from independent random streams.

    python -m ui3d.teachers.embedded.dataset --grid outputs/renders.png   # one row per category
"""

from __future__ import annotations

import argparse
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ui3d.data.cameras import CameraBatch, CameraConfig, orbit_cameras, sample_cameras, view_direction, view_prompt
from ui3d.renderers.rasterizer import get_rays, interpolate, rasterize
from ui3d.renderers.shading import camera_light, composite, corner_normals, face_forward, lambert
from ui3d.teachers.embedded.objects import (ObjectSpec, is_normal_map_prompt, normal_map_prompt, object_prompt,
                                         sample_spec, surface_frame)
from ui3d.teachers.embedded.patterns import albedo
from ui3d.teachers.embedded.shapes import CATEGORIES, build_mesh

SPLITS: tuple[str, ...] = ("train", "val", "test")


@functools.lru_cache(maxsize=None)
def _mesh_tensors(category: str, variant: int) -> tuple[Tensor, Tensor, Tensor]:
    """Vertices [V, 3], faces [F, 3] and crease-aware corner normals [F, 3, 3] of a normalised mesh."""
    mesh = build_mesh(category, variant)
    v = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    f = torch.as_tensor(mesh.faces, dtype=torch.int64)
    return v, f, corner_normals(v, f)


def render_object(spec: ObjectSpec, cameras: CameraBatch, height: int, width: int | None = None,
                  supersample: int = 2, background: tuple[float, float, float] = (1.0, 1.0, 1.0),
                  normal_map: bool = False) -> Tensor:
    """Render one object from B cameras → images [B, 3, H, W] in [0, 1]: shaded, or with `normal_map` its
    world-space normals (those facing the camera, as a closed mesh shows them) mapped to (n + 1)/2."""
    width = width or height
    h, w = height * supersample, width * supersample
    v, f, n_corner = _mesh_tensors(spec.category, spec.variant)
    rast = rasterize(v, f, cameras.c2w, cameras.fovy, h, w)
    points = interpolate(v, rast, f)
    _, rays_d = get_rays(cameras.c2w, cameras.fovy, h, w)
    normals = face_forward(torch.nn.functional.normalize(interpolate(n_corner, rast, None), dim=-1), rays_d)
    if normal_map:
        rgb = 0.5 * (normals + 1.0)
    else:
        rgb = lambert(albedo(points, normals, spec.color, spec.pattern, surface_frame(spec)), normals,
                      camera_light(cameras.c2w)[:, None, None])
    image = composite(rgb, rast.mask, background).permute(0, 3, 1, 2)
    return torch.nn.functional.avg_pool2d(image, supersample) if supersample > 1 else image


@dataclass
class EmbeddedDataConfig:
    """Renders for the embedded teacher."""

    resolution: int = 32
    """Image height and width in pixels."""
    supersample: int = 2
    """Samples per pixel along each axis (anti-aliasing)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Background colour (RGB in [0, 1])."""
    cameras: CameraConfig = field(default_factory=CameraConfig)
    """Camera distribution (the one stage 1 samples)."""
    drop_color_prob: float = 0.2
    """Probability that the prompt omits the colour word ("a striped vase")."""
    drop_pattern_prob: float = 0.2
    """Probability that the prompt omits the pattern word ("a red vase")."""
    normal_map_prob: float = 0.0
    """Probability that a sample is the object's normal map, prompted "a normal map of a vase" (no colour or
    pattern word: a normal map shows neither)."""
    view_dependent: bool = True
    """Append DreamFusion's view suffix (", side view")."""
    seed: int = 0
    """Seed of every split's random stream."""
    size: int = 10000
    """Number of samples of a split (`len(dataset)`)."""


class EmbeddedRenderDataset(torch.utils.data.Dataset):
    """Deterministic random renders: item i is a dict with `image` [3, H, W] in [0, 1], `prompt`, `normal_map`
    (whether the image is a normal map) and labels `category`, `variant`, `color`, `pattern`, `view`,
    `elevation_deg`, `azimuth_deg`, `camera_distance`, `fovy` (radians)."""

    def __init__(self, cfg: EmbeddedDataConfig | None = None, split: str = "train") -> None:
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        self.cfg, self.split = cfg or EmbeddedDataConfig(), split

    def __len__(self) -> int:
        return self.cfg.size

    def generator(self, index: int) -> torch.Generator:
        """The random stream of item `index`: seeded by a hash of (seed, split, index), independent across all
        three (torch's CPU generator keeps only 32 bits of a seed, so they are mixed, not concatenated)."""
        key = f"{self.cfg.seed}/{self.split}/{index}".encode()
        return torch.Generator().manual_seed(int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little"))

    def describe(self, index: int) -> tuple[ObjectSpec, CameraBatch, str]:
        """Item `index` without rendering: (object, camera batch of one, prompt). The normal-map draw comes last,
        so the shaded items of a stream are the same whatever `normal_map_prob` is."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        g = self.generator(index)
        spec = sample_spec(g)
        cams = sample_cameras(1, self.cfg.cameras, g)
        keep_color, keep_pattern = (torch.rand(2, generator=g) >= torch.tensor(
            [self.cfg.drop_color_prob, self.cfg.drop_pattern_prob])).tolist()
        prompt = object_prompt(spec, keep_color, keep_pattern)
        if self.cfg.normal_map_prob > 0 and torch.rand(1, generator=g).item() < self.cfg.normal_map_prob:
            prompt = normal_map_prompt(spec)
        if self.cfg.view_dependent:
            prompt = view_prompt(prompt, view_direction(cams.elevation_deg, cams.azimuth_deg)[0])
        return spec, cams, prompt

    def __getitem__(self, index: int) -> dict:
        spec, cams, prompt = self.describe(index)
        normal_map = is_normal_map_prompt(prompt)
        image = render_object(spec, cams, self.cfg.resolution, supersample=self.cfg.supersample,
                              background=self.cfg.background, normal_map=normal_map)[0]
        return {"image": image, "prompt": prompt, "normal_map": normal_map, "category": spec.category,
                "variant": spec.variant, "color": spec.color, "pattern": spec.pattern,
                "view": view_direction(cams.elevation_deg, cams.azimuth_deg)[0],
                "elevation_deg": cams.elevation_deg[0].item(), "azimuth_deg": cams.azimuth_deg[0].item(),
                "camera_distance": cams.camera_distances[0].item(), "fovy": cams.fovy[0].item()}


def category_grid(columns: int = 8, resolution: int = 64, seed: int = 0,
                  cfg: EmbeddedDataConfig | None = None) -> tuple[Tensor, list[list[str]]]:
    """One row per category of random objects and cameras → (image [3, rows·R, columns·R], prompts per cell)."""
    cfg = cfg or EmbeddedDataConfig()
    g = torch.Generator().manual_seed(seed)
    rows, prompts = [], []
    for category in CATEGORIES:
        cells, names = [], []
        while len(cells) < columns:
            spec = sample_spec(g)
            if spec.category != category:
                continue
            cams = sample_cameras(1, cfg.cameras, g)
            cells.append(render_object(spec, cams, resolution, supersample=cfg.supersample)[0])
            names.append(view_prompt(object_prompt(spec), view_direction(cams.elevation_deg, cams.azimuth_deg)[0]))
        rows.append(torch.cat(cells, dim=2))
        prompts.append(names)
    return torch.cat(rows, dim=1), prompts


def turntable(spec: ObjectSpec, n_views: int = 8, resolution: int = 64) -> Tensor:
    """Renders [n_views, 3, R, R] of an object on threestudio's validation orbit."""
    return render_object(spec, orbit_cameras(n_views), resolution)


def save_image(image: Tensor, path: str | Path) -> None:
    """Save an image [3, H, W] in [0, 1] as PNG."""
    import imageio.v3 as iio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def main(argv: list[str] | None = None) -> None:
    """Command line: write a sample grid (one row per category) and its prompts next to it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="outputs/renders.png", help="PNG path of the sample grid")
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    image, prompts = category_grid(args.columns, args.resolution, args.seed)
    save_image(image, args.grid)
    Path(args.grid).with_suffix(".txt").write_text("\n".join(" | ".join(row) for row in prompts) + "\n")
    print(f"wrote {args.grid} and its prompts {Path(args.grid).with_suffix('.txt')}")


if __name__ == "__main__":
    main()
