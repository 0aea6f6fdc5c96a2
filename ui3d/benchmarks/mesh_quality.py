"""Quality of an exported textured mesh, measured offline against the embedded teacher's ground truth.

    python -m ui3d.benchmarks.mesh_quality outputs/uniinstruct-fkl/a_vase@<timestamp>  [--stage texture]

1. The embedded classifier on 8 views of `<run>/<stage>/save/export/model.obj` (loaded back from disk with its
   texture, rendered by our rasterizer): how many views it names the prompt's category (and colour, if named).
2. Chamfer distance from the exported mesh, normalised to a unit bounding box, to the nearest ground-truth
   procedural shape of the prompt's category (every variant), next to the same distance for a sphere (the
   baseline) and to the nearest shape of every other category. A perfect mesh does not score 0: two samplings of
   one surface are ~0.028 apart at 4,000 points (`floor`). Where the category's nearest shape to the sphere *is*
   a sphere (the ball), the sphere's Chamfer is that floor, and no mesh can reliably score below it.
Writes the table to `<run>/<stage>/save/export/quality.md`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import trimesh
from omegaconf import OmegaConf

from ui3d.benchmarks.score_run import prompt_labels
from ui3d.data.cameras import orbit_cameras
from ui3d.export.mesh import Z_UP_TO_Y_UP
from ui3d.export.turntable import render_textured
from ui3d.export.uv import UVMesh
from ui3d.teachers.embedded.classifier import load_classifier
from ui3d.teachers.embedded.shapes import CATEGORIES, build_mesh, num_variants


def load_exported(obj: Path) -> tuple[UVMesh, torch.Tensor]:
    """The OBJ as written (Y-up) back in ui3d's Z-up world, with its texture [H, W, 3] in [0, 1]."""
    mesh = trimesh.load(obj, force="mesh", process=False)
    vertices = torch.tensor(np.asarray(mesh.vertices) @ Z_UP_TO_Y_UP, dtype=torch.float32)  # inverse rotation
    faces = torch.tensor(np.asarray(mesh.faces), dtype=torch.int64)
    uv = torch.tensor(np.asarray(mesh.visual.uv), dtype=torch.float32)
    image = np.asarray(mesh.visual.material.image.convert("RGB"), dtype=np.float32) / 255.0
    return UVMesh(vertices, faces, uv, torch.arange(len(vertices))), torch.tensor(image)


def classify_views(mesh: UVMesh, texture: torch.Tensor, n_views: int = 8) -> dict[str, list[str]]:
    """Classifier predictions on `n_views` orbit views at the teacher's framing (distance 1.3, fovy 55°)."""
    cams = orbit_cameras(n_views, 15.0, 1.3, 55.0)
    with torch.no_grad():
        images = render_textured(mesh, texture, cams.c2w, cams.fovy, 32, supersample=4)
    return load_classifier().predict(images.permute(0, 3, 1, 2).contiguous())


def unit_box_points(mesh: trimesh.Trimesh, n: int = 4000, seed: int = 0) -> torch.Tensor:
    """n surface points of the mesh scaled so its bounding box's longest side is 1, centred at the box centre."""
    lo, hi = mesh.bounds
    points, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return torch.tensor((points - (lo + hi) / 2) / (hi - lo).max(), dtype=torch.float32)


def chamfer(a: torch.Tensor, b: torch.Tensor) -> float:
    """Symmetric Chamfer distance: mean nearest-neighbour distance a→b plus b→a."""
    d = torch.cdist(a, b)
    return float(d.min(1).values.mean() + d.min(0).values.mean())


def nearest_shape(points: torch.Tensor, category: str) -> float:
    return min(chamfer(points, unit_box_points(build_mesh(category, v))) for v in range(num_variants(category)))


def sampling_floor(mesh: trimesh.Trimesh) -> float:
    """The Chamfer distance of a mesh to itself sampled again (another seed): what an exact copy scores."""
    return chamfer(unit_box_points(mesh), unit_box_points(mesh, seed=1))


def sphere_baseline(category: str) -> tuple[float, float]:
    """The sphere's Chamfer to the category's nearest shape, and that shape's `sampling_floor` (equal when the
    category's shape is itself a sphere: then the baseline cannot be beaten but by sampling noise)."""
    sphere = unit_box_points(trimesh.creation.icosphere(subdivisions=4))
    shapes = [build_mesh(category, v) for v in range(num_variants(category))]
    distances = [chamfer(sphere, unit_box_points(m)) for m in shapes]
    nearest = min(range(len(shapes)), key=distances.__getitem__)
    return distances[nearest], sampling_floor(shapes[nearest])


def score_mesh(obj: Path, prompt: str) -> dict:
    """The module's two measures for an exported `model.obj`: the classifier's predictions on 8 views
    (`views` per named head: how many match the prompt, `categories`: the 8 predictions), the Chamfer distance
    to the nearest shape of the prompt's category (`chamfer`), of a sphere (`sphere`; `floor`: what an exact copy
    of the category's shape nearest the sphere scores), and to every category."""
    wanted = prompt_labels(prompt)
    if "category" not in wanted:
        raise ValueError(f"the prompt {prompt!r} names no category of the embedded teacher")
    mesh, texture = load_exported(obj)
    pred = classify_views(mesh, texture)
    points = unit_box_points(trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), process=False))
    by_category = {c: nearest_shape(points, c) for c in CATEGORIES}
    sphere, floor = sphere_baseline(wanted["category"])
    return {"views": {head: sum(x == label for x in pred[head]) for head, label in wanted.items()},
            "categories": pred["category"], "chamfer": by_category[wanted["category"]], "sphere": sphere, "floor": floor,
            "by_category": by_category, "faces": len(mesh.faces)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--stage", default="texture")
    args = p.parse_args(argv)
    prompt = OmegaConf.load(args.run_dir / "config.yaml").system.prompt_processor.prompt
    wanted = prompt_labels(prompt)
    if "category" not in wanted:
        raise SystemExit(f"the prompt {prompt!r} names no category of the embedded teacher")
    obj = args.run_dir / args.stage / "save" / "export" / "model.obj"
    score = score_mesh(obj, prompt)
    lines = [f"prompt {prompt!r}; exported mesh {obj} ({score['faces']} faces)", "",
             "| measure | value |", "| --- | --- |"]
    lines += [f"| views classified as {head} '{wanted[head]}' | {n} / 8 |" for head, n in score["views"].items()]
    nearest = sorted(score["by_category"].items(), key=lambda kv: kv[1])[:4]
    lines += [f"| predicted categories | {', '.join(score['categories'])} |",
              f"| Chamfer to nearest '{wanted['category']}' (unit box) | {score['chamfer']:.4f} |",
              f"| same for a sphere (baseline) | {score['sphere']:.4f} |",
              f"| an exact copy of the shape nearest the sphere, resampled (floor) | {score['floor']:.4f} |",
              "| nearest category by Chamfer | " + ", ".join(f"{c} {d:.3f}" for c, d in nearest) + " |"]
    table = "\n".join(lines)
    print(table)
    (obj.parent / "quality.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
