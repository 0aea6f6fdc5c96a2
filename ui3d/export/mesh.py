"""Textured-mesh export (threestudio's `mesh-exporter`): any stage's geometry → `model.obj` + `model.mtl` +
`texture.png`, `model.glb`, a vertex-colour `model.ply` and a turntable of the textured mesh.

The mesh of a mesh geometry is used as is; an `implicit-volume` (stage 1) is first converted by marching cubes
at the automatic iso-level (`ui3d.export.isosurface`), so `--export` works from every stage's checkpoint. The
albedo is baked into an xatlas UV atlas (`ui3d.export.uv`). Files are written Y-up (glTF's convention, and
what OBJ viewers assume): world (x, y, z) with z up becomes (x, z, −y).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import trimesh
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor

from ui3d import files
from ui3d.export.isosurface import extract_mesh
from ui3d.export.turntable import save_turntable
from ui3d.export.uv import UVMesh, bake_texture, unwrap

Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation applied to written vertices: (x, y, z) → (x, z, −y)."""


def geometry_mesh(geometry, resolution: int = 128, max_faces: int = 10000
                  ) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """Vertices [V, 3], faces [F, 3] and the albedo function (points → [N, 3]) of a stage's geometry."""
    if hasattr(geometry, "mesh"):
        vertices, faces = geometry.mesh()
    else:
        mesh = extract_mesh(geometry, resolution, max_faces=max_faces)
        vertices, faces = torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)
    return vertices.detach().cpu().float(), faces.cpu().long(), lambda p: geometry(p)["features"][:, :3]


def _y_up(vertices: Tensor) -> np.ndarray:
    return vertices.numpy().astype(np.float64) @ Z_UP_TO_Y_UP.T


def write_obj(out_dir: Path, mesh: UVMesh, texture_png: str = "texture.png") -> tuple[Path, Path]:
    """`model.obj` (v, vt, f v/vt, counter-clockwise) and `model.mtl` pointing at `texture_png`."""
    obj, mtl = out_dir / "model.obj", out_dir / "model.mtl"
    mtl.write_text(f"newmtl material_0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {texture_png}\n")
    lines = ["# ui3d textured mesh", "mtllib model.mtl", "usemtl material_0"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in _y_up(mesh.vertices)]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in mesh.uv.tolist()]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in (mesh.faces + 1).tolist()]
    obj.write_text("\n".join(lines) + "\n")
    return obj, mtl


def write_glb(path: Path, mesh: UVMesh, image: Image.Image) -> Path:
    """Binary glTF with the texture embedded (trimesh flips v to glTF's top-left origin)."""
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image, metallicFactor=0.0, roughnessFactor=1.0)
    visual = trimesh.visual.TextureVisuals(uv=mesh.uv.numpy(), material=material)
    trimesh.Trimesh(_y_up(mesh.vertices), mesh.faces.numpy(), visual=visual, process=False).export(path)
    return path


def write_ply(path: Path, vertices: Tensor, faces: Tensor, colours: Tensor) -> Path:
    """Vertex-colour PLY (colours [V, 3] in [0, 1])."""
    rgba = np.concatenate([(colours.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8),
                           np.full((len(colours), 1), 255, np.uint8)], axis=1)
    trimesh.Trimesh(_y_up(vertices), faces.numpy(), vertex_colors=rgba, process=False).export(path)
    return path


@torch.no_grad()
def export_geometry(geometry, out_dir: Path, texture_size: int = 1024, resolution: int = 128,
                    max_faces: int = 10000, turntable_views: int = 30, turntable_size: int = 256
                    ) -> dict[str, Path]:
    """Write the textured mesh of `geometry` into `out_dir`; returns {"obj", "mtl", "texture", "glb", "ply",
    "turntable"} paths. `resolution`/`max_faces` apply to NeRF geometries only (marching cubes grid, budget)."""
    out_dir = Path(out_dir)
    was_training = geometry.training
    geometry.eval()
    vertices, faces, albedo = geometry_mesh(geometry, resolution, max_faces)
    uv_mesh = unwrap(vertices, faces, resolution=texture_size)
    texture, _ = bake_texture(uv_mesh, albedo, texture_size)
    image = Image.fromarray((texture.numpy() * 255 + 0.5).astype(np.uint8))
    with files.atomic_dir(out_dir) as tmp:  # the files are written together and replace an earlier export whole
        paths = {"texture": tmp / "texture.png"}
        image.save(paths["texture"])
        paths["obj"], paths["mtl"] = write_obj(tmp, uv_mesh)
        paths["glb"] = write_glb(tmp / "model.glb", uv_mesh, image)
        paths["ply"] = write_ply(tmp / "model.ply", vertices, faces, albedo(vertices).cpu())
        if turntable_views > 0:
            paths["turntable"] = save_turntable(tmp / "turntable", uv_mesh, texture, turntable_views, turntable_size)
    geometry.train(was_training)
    return {key: out_dir / path.name for key, path in paths.items()}


def export_stage(experiment: DictConfig, stage_name: str, run_dir: Path, **options) -> dict[str, Path]:
    """`--export`: rebuild `stage_name`'s geometry from `run_dir/<stage>/ckpts/last.ckpt` and export it into
    `run_dir/<stage>/save/export/` (`options` go to `export_geometry`)."""
    from ui3d.systems.runner import previous_geometry

    run_dir = Path(run_dir)
    geometry = previous_geometry(experiment, stage_name, run_dir)
    return export_geometry(geometry, run_dir / stage_name / "save" / "export", **options)
