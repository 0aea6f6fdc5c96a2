"""Forward + backward time of one stage-1 NeRF render per encoding (DESIGN §1: CPU defaults must be cheap).

A 1×32×32 render at 64 samples per ray of the blob-initialised implicit volume, diffuse material (finite-difference
normals: 4 density evaluations per sample) or no material, with occupancy culling off (every sample evaluated) or
on (after one grid update). Median of `--repeats` runs, after one warm-up; the fp32 matmul rate of the same
process is printed as the machine's ceiling.

    OMP_NUM_THREADS=2 python -m ui3d.benchmarks.nerf_render     # prints the table, writes benchmarks/nerf_render.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ui3d.background.solid_color_background import SolidColorBackground
from ui3d.data.cameras import orbit_cameras
from ui3d.geometry.implicit_volume import ImplicitVolume
from ui3d.materials.diffuse_with_point_light_material import DiffuseWithPointLightMaterial
from ui3d.materials.no_material import NoMaterial
from ui3d.renderers.nerf_volume_renderer import NeRFVolumeRenderer
from ui3d.renderers.rasterizer import get_rays
from ui3d.benchmarks.common import matmul_gflops


def time_render(encoding: str, diffuse: bool, culled: bool, size: int, samples: int, repeats: int) -> float:
    """Median seconds of one forward + backward render."""
    torch.manual_seed(0)
    geometry = ImplicitVolume(ImplicitVolume.Config(encoding=encoding))
    material = DiffuseWithPointLightMaterial(DiffuseWithPointLightMaterial.Config(ambient_only_steps=0)) \
        if diffuse else NoMaterial()
    background = SolidColorBackground(SolidColorBackground.Config())
    renderer = NeRFVolumeRenderer(NeRFVolumeRenderer.Config(num_samples_per_ray=samples, grid_prune=culled,
                                                            estimator="torch"), geometry, material, background)
    if culled:
        renderer.update_occupancy()
    cams = orbit_cameras(1)
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, size, size)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        out = renderer(rays_o, rays_d, cams.camera_positions, shading="diffuse" if diffuse else None)
        out["comp_rgb"].mean().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/nerf_render.md")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    header = ["encoding", "material", "culling", "fwd+bwd s"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for encoding in ("triplane", "dense", "hashgrid"):
        for diffuse in (True, False):
            for culled in (False, True):
                seconds = time_render(encoding, diffuse, culled, args.size, args.samples, args.repeats)
                lines.append(f"| {encoding} | {'diffuse' if diffuse else 'none'} | {'on' if culled else 'off'} "
                             f"| {seconds:.3f} |")
                print(lines[-1], flush=True)
    text = "\n".join(lines)
    note = (f"1×{args.size}×{args.size} render, {args.samples} samples/ray, {torch.get_num_threads()} threads, "
            f"fp32 matmul {matmul_gflops():.0f} GFLOP/s; default `ImplicitVolume.Config` per encoding.")
    print(note)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("# Stage-1 NeRF render time per encoding\n\n`python -m ui3d.benchmarks.nerf_render`: "
                              + note + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
