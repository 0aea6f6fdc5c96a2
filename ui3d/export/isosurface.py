"""NeRF density grid → a clean triangle mesh: automatic iso-level, marching cubes, largest component, decimation.

threestudio extracts stage-1 meshes at a fixed density threshold (`isosurface_threshold: 25`, or `auto` = the
grid mean), which is wrong whenever the field's density scale differs from the one it was tuned on. Here the
level comes from what the renderer sees:

1. the NeRF's silhouettes along the three grid axes: rays through the whole grid whose opacity
   1 − exp(−Σ σ h) exceeds ½ (the `opacity > 0.5` mask of a render; h the grid spacing);
2. the iso-level σ* is the density whose level set {σ > σ*} casts silhouettes of the same total area along
   those axes (bisection in log σ: the area falls monotonically as σ* grows);
3. marching cubes runs on log σ at log σ*: densities fall off exponentially at a NeRF's surface, so log σ is
   nearly linear there and the surface is placed accurately between grid points even for sharp fields.

So the mesh shows the outline the teacher saw, whatever the field's density scale (soft early NeRFs get a low
level, sharp trained ones a high one), with no hand tuning. Magic3D and ProlificDreamer take stage-2 meshes
from the coarse NeRF in the same way (density grid → marching cubes) before their DMTet refinement.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import trimesh
from skimage.measure import marching_cubes
from torch import Tensor


def axis_silhouettes(density: Tensor, spacing: float) -> list[Tensor]:
    """The NeRF's silhouettes along the three grid axes: opacity 1 − exp(−Σ σ h) > ½ of rays through the
    whole grid, three [R, R] bool images."""
    return [(density.sum(dim) * spacing) > math.log(2.0) for dim in range(3)]


def level_set_area(density: Tensor, level: float) -> int:
    """Total silhouette area (in grid cells) of {σ > level} along the three axes."""
    inside = density > level
    return sum(int(inside.any(dim).sum()) for dim in range(3))


def auto_iso_level(density: Tensor, spacing: float, iterations: int = 40) -> float:
    """The density σ* whose level set casts the NeRF's silhouettes (module docstring): bisection in log σ,
    the silhouette area of {σ > σ*} falling as σ* grows."""
    target = sum(int(s.sum()) for s in axis_silhouettes(density, spacing))
    peak = float(density.max())
    if target == 0 or peak <= 0:
        warnings.warn("the density grid is transparent everywhere; using half its maximum as iso-level")
        return 0.5 * peak
    lo, hi = math.log(peak) - 30.0, math.log(peak)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if level_set_area(density, math.exp(mid)) > target else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The connected component with the most faces (floaters and specks of a NeRF removed)."""
    parts = mesh.split(only_watertight=False)
    return max(parts, key=lambda m: len(m.faces)) if len(parts) > 1 else mesh


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to at most `max_faces` faces (trimesh + fast_simplification); unchanged if that is
    not installed or the mesh is already small enough."""
    if max_faces <= 0 or len(mesh.faces) <= max_faces:
        return mesh
    try:
        simplified = mesh.simplify_quadric_decimation(face_count=max_faces)
    except (ImportError, ModuleNotFoundError, ValueError) as err:
        warnings.warn(f"mesh decimation skipped ({err}); install fast_simplification for a face budget")
        return mesh
    return largest_component(simplified)


def grid_to_mesh(density: Tensor, radius: float, level: float | None = None, max_faces: int = 0,
                 clean: bool = True) -> trimesh.Trimesh:
    """Marching cubes on a density grid [R, R, R] sampled at linspace(−radius, radius, R)³ (indexed [x, y, z]).

    `level=None` picks it with `auto_iso_level`. The grid is padded with zero density so the mesh is closed
    where the shape touches the box. Faces wind counter-clockwise seen from outside (outward normals)."""
    density = density.detach().float().cpu()
    res = density.shape[0]
    spacing = 2.0 * radius / (res - 1)
    level = auto_iso_level(density, spacing) if level is None else float(level)
    if level <= 0:
        raise ValueError(f"iso-level must be a positive density, got {level}")
    # marching cubes on log σ: NeRF densities fall off exponentially at surfaces, so log σ is close to linear
    # there and the linear interpolation along grid edges stays accurate for fields sharper than the grid
    floor = 1e-3 * level
    padded = np.log(np.pad(density.clamp(min=0).numpy(), 1, mode="constant", constant_values=0.0) + floor)
    log_level = math.log(level + floor)
    if not (padded.min() < log_level < padded.max()):
        raise ValueError(f"iso-level {level:.4g} is outside the density range (max {float(density.max()):.4g})")
    verts, faces, _, _ = marching_cubes(padded, level=log_level, spacing=(spacing,) * 3,
                                        gradient_direction="descent")
    verts = verts - radius - spacing  # grid index 1 (after padding) is −radius
    mesh = trimesh.Trimesh(verts, faces[:, ::-1], process=True)  # skimage winds them inward for "descent"
    if clean:
        mesh = largest_component(mesh)
    return decimate(mesh, max_faces)


def extract_mesh(geometry, resolution: int = 64, level: float | None = None, max_faces: int = 0
                 ) -> trimesh.Trimesh:
    """The mesh of an `implicit-volume` (anything with `isosurface_grid(resolution)` and `cfg.radius`)."""
    grid = geometry.isosurface_grid(resolution)
    return grid_to_mesh(grid, float(geometry.cfg.radius), level=level, max_faces=max_faces)
