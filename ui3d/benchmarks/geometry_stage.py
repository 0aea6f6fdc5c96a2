"""Does stage 2 (geometry) help? Its variants side by side on the same stage-1 NeRFs.

    python -m ui3d.benchmarks.geometry_stage RUN_DIR [RUN_DIR ...] --variants shipped no-guidance \\
        --out benchmarks/geometry_stage.md

Every RUN_DIR is a finished stage-1 run of a multi-stage config (e.g. the runs of `prompt_suite --stage1-only`).
For each variant the run's `nerf/` and `config.yaml` are copied under `--root` (the source is not touched), the
variant's overrides are written into the copy's `stages.geometry` block, and stage 2 alone runs on it
(`launch.py resume=<copy> --stage geometry`). Scored with `mesh_quality` (8 classified views, Chamfer to the nearest
ground-truth shape of the prompt's category): the marching-cubes mesh of the NeRF (stage 2's starting point, the
same for every variant) and each variant's refined mesh. Stage 2 helps when the refined mesh is closer to the
ground truth, and named right on more views, than the mesh it started from.

Variants (`VARIANTS`): `shipped` (the config as it is), `no-guidance` (the regularisers alone: what the guidance
adds over smoothing), `high-t` (SDS at t in [0.5, 0.98] only: shape, not shading detail), `low-lr` (vertex lr
halved), `no-pattern-words` (the embedded teacher's pattern words left out of the stage-2 prompt: the albedo is
fixed, so the teacher could only answer them with the surface), `sphere` (vertices kept inside the radius-0.5
sphere that bounds the embedded configs' NeRF density), `sphere-no-pattern-words` (both), `hold` (the vertices
held to the converted mesh's surface along its normals, `lambda_normal_offset` 1e7), `normals` (SDS on normal maps,
`comp_normal_vis`, prompted "a normal map of a vase": the embedded teacher's normal-map style, colour and pattern
words left out). A variant is
`name=key=value,key=value` too (keys under `stages.geometry`, e.g. `strong=system.loss.lambda_sds=2.0`), where
an item may name a variant to build on (`normals-cfg7=normals,system.guidance.guidance_scale=7.5`).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from omegaconf import OmegaConf

from ui3d.files import write_text
from ui3d.teachers.embedded.objects import NORMAL_MAP_STYLE
from ui3d.teachers.embedded.patterns import COLORS, PATTERNS

VARIANTS: dict[str, dict[str, object]] = {
    "shipped": {},
    "no-guidance": {"system.loss.lambda_sds": 0.0},
    "high-t": {"system.guidance.min_step_percent": 0.5, "system.guidance.max_step_percent": 0.98},
    "low-lr": {"system.optimizer.lr": 5.0e-4},
    "no-pattern-words": {"system.prompt_processor.drop_words": list(PATTERNS)},
    "sphere": {"system.geometry.sphere_radius": 0.5},
    "hold": {"system.loss.lambda_normal_offset": 1.0e7},
    "normals": {"system.guidance_input": "comp_normal_vis",
                "system.prompt_processor.prompt_template": f"{NORMAL_MAP_STYLE} {{prompt}}",
                "system.prompt_processor.drop_words": [*COLORS, *PATTERNS]},
}
VARIANTS["sphere-no-pattern-words"] = {**VARIANTS["sphere"], **VARIANTS["no-pattern-words"]}


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """`name` (one of `VARIANTS`) or `name=item,item` where an item is `key=value` (value parsed as YAML) or a
    variant's name, whose overrides it includes (`normals-cfg7=normals,system.guidance.guidance_scale=7.5`)."""
    if "=" not in text:
        if text not in VARIANTS:
            raise SystemExit(f"unknown variant '{text}'; expected one of {', '.join(VARIANTS)} or name=key=value,...")
        return text, VARIANTS[text]
    name, _, body = text.partition("=")
    overrides: dict[str, object] = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        if not name or not key or (not eq and key not in VARIANTS):
            raise SystemExit(f"cannot read variant '{text}': expected name=key=value[,key=value] (an item may be "
                             f"one of {', '.join(VARIANTS)})")
        overrides.update({key: OmegaConf.create(f"v: {value}").v} if eq else VARIANTS[key])
    return name, overrides


def prompt_of(run_dir: Path) -> str:
    return str(OmegaConf.load(run_dir / "config.yaml").system.prompt_processor.prompt)


def prepare(source: Path, target: Path, overrides: dict[str, object]) -> Path:
    """A copy of `source`'s stage 1 at `target` with `overrides` under `stages.geometry` (no-op if done with the
    same overrides; a copy a variant of the same name with other overrides left is made again)."""
    record = json.dumps(overrides, sort_keys=True, default=str)
    if (target / "geometry" / "done").is_file() and (target / "variant.json").is_file() \
            and (target / "variant.json").read_text() == record:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copytree(source / "nerf", target / "nerf")
    cfg = OmegaConf.load(source / "config.yaml")
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"stages.geometry.{key}", value, force_add=True)
    OmegaConf.save(cfg, target / "config.yaml")
    write_text(target / "variant.json", record)
    return target


def refine(run_dir: Path) -> float:
    """Stage 2 alone on a prepared copy; its wall seconds."""
    from ui3d import cli

    if not (run_dir / "geometry" / "done").is_file():
        start = time.perf_counter()
        code = cli.main([f"resume={run_dir}", "--stage", "geometry"])
        if code != 0:
            raise RuntimeError(f"stage 2 on {run_dir} exited with {code}")
        return time.perf_counter() - start
    return float("nan")


def score(run_dir: Path, stage: str, prompt: str) -> dict:
    """`mesh_quality` of a stage's mesh (exported first where needed): category views of 8, Chamfer."""
    from ui3d.benchmarks.mesh_quality import score_mesh
    from ui3d.export.mesh import export_stage

    obj = run_dir / stage / "save" / "export" / "model.obj"
    if not obj.is_file():
        export_stage(OmegaConf.load(run_dir / "config.yaml"), stage, run_dir, turntable_views=0)
    s = score_mesh(obj, prompt)
    return {"views": s["views"]["category"], "chamfer": s["chamfer"], "sphere": s["sphere"]}


def table(rows: dict[str, dict], names: list[str]) -> str:
    head = "| prompt (run) | NeRF mesh: views, Chamfer | " + " | ".join(names) + " |"
    lines = [head, "|" + " --- |" * (len(names) + 2)]
    for label, r in rows.items():
        cells = [f"{r[n]['views']} / 8, {r[n]['chamfer']:.3f}" for n in names]
        lines.append(f"| {label} | {r['nerf']['views']} / 8, {r['nerf']['chamfer']:.3f} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(
        f"{statistics.mean(r[n]['views'] for r in rows.values()):.1f} / 8, "
        f"{statistics.mean(r[n]['chamfer'] for r in rows.values()):.3f}" for n in ["nerf", *names]) + " |")
    lines.append("| runs better than the NeRF mesh (Chamfer lower by > 0.002 / higher by > 0.002) | — | " + " | ".join(
        f"{sum(r[n]['chamfer'] < r['nerf']['chamfer'] - 0.002 for r in rows.values())} / "
        f"{sum(r[n]['chamfer'] > r['nerf']['chamfer'] + 0.002 for r in rows.values())}" for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--variants", nargs="+", default=["shipped", "no-guidance"])
    parser.add_argument("--root", type=Path, default=Path("outputs/geometry_stage"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    variants = dict(parse_variant(v) for v in args.variants)
    for run in args.runs:
        if not (run / "nerf" / "done").is_file() or not (run / "config.yaml").is_file():
            raise SystemExit(f"{run} is not a finished stage-1 run (no nerf/done or config.yaml)")
        if "geometry" not in OmegaConf.load(run / "config.yaml").get("stages", {}):
            raise SystemExit(f"{run}'s config has no geometry stage")
    start = time.perf_counter()
    rows = {}
    for run in args.runs:
        prompt = prompt_of(run)
        label = f"{prompt} ({run.name})"
        row = {}
        for name, overrides in variants.items():
            copy = prepare(run, args.root / name / run.name, overrides)
            refine(copy)
            row.setdefault("nerf", score(copy, "nerf", prompt))
            row[name] = score(copy, "geometry", prompt)
        rows[label] = row
        print(label, {k: (v["views"], round(v["chamfer"], 3)) for k, v in row.items()}, flush=True)
    minutes = (time.perf_counter() - start) / 60
    command = "python -m ui3d.benchmarks.geometry_stage <runs> --variants " + " ".join(args.variants)
    text = (f"`{command}`: {len(args.runs)} stage-1 runs, {minutes:.1f} min.\n\n"
            + "Variants: " + "; ".join(f"`{n}` {o or '(as configured)'}" for n, o in variants.items()) + "\n\n"
            + table(rows, list(variants)) + "\n")
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
