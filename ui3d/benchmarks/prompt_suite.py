"""Text-to-3D on a suite of prompts, configs side by side: does a setting hold on every prompt the teacher knows?

    python -m ui3d.benchmarks.prompt_suite --quick     # the headline config, stage 1, 6 prompts (≈ 20 min)
    python -m ui3d.benchmarks.prompt_suite             # every config × prompts/suite.txt, the headline config
                                                       # through all three stages, and the diversity part
    python -m ui3d.benchmarks.prompt_suite --part suite --configs uniinstruct-fkl.yaml prolificdreamer.yaml \\
        --prompts "a vase" "a green mug" --set system.guidance.lambda_gan=0.2     # any subset, any overrides
    python -m ui3d.benchmarks.prompt_suite --quick --suite-seeds 0 1 2     # the same on 3 seeds: mean ± sd

Every run goes through `launch.py` in a worker process (one CPU thread each, `--jobs` at a time), under
`--root`; a finished run found there is reused and an unfinished one resumed, so a benchmark that was stopped
continues where it was (`--root` of the earlier run). Each run is scored from what it wrote:

- **stage-1 turntable** (30 orbit frames): the embedded classifier's category, colour and pattern on every
  frame (the fraction that matches the prompt, for what the prompt names), and the collapse rule of
  `ui3d.metrics.stage1` (the NeRF filled its box or vanished);
- **ratio statistics** (Uni-Instruct runs, per-step logs): the fraction of steps after the rkl warm start where
  the logit hit its clamp or the normalised r its clip, and the spread of the loss weight h(r) over every view
  of those steps, with its part inside a step's batch (what h can weigh one view against another by);
- **meshes** (the headline config, all three stages): `mesh_quality` on the marching-cubes mesh of the NeRF
  (before stage 2), on the refined mesh (after stage 2) and on the textured export (after stage 3): views the
  classifier names right out of 8, Chamfer distance to the nearest ground-truth shape and a sphere's;
- **diversity** (`--part diversity`): prompts that leave the colour open, several seeds per config: the
  colours the classifier names (majority over each run's frames) and the mean pairwise Chamfer distance between
  the seeds' NeRF meshes, beside the teacher's own samples of the same prompts (colours; pairwise distance of
  classifier features, for runs and teacher alike).

Tables go to `--out` (benchmarks/prompt_suite.md), raw scores to `<root>/results.json`.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ui3d import batch
from ui3d.benchmarks.common import Task, run_tasks

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "prompts" / "suite.txt"
HEADLINE = "uniinstruct-fkl.yaml"
CONFIGS = ("uniinstruct-fkl.yaml", "uniinstruct-rkl.yaml", "uniinstruct-jkl.yaml", "uniinstruct-js.yaml",
           "prolificdreamer.yaml", "dreamfusion.yaml")
QUICK_PROMPTS = ("a vase", "a blue striped bowl", "a green mug", "a yellow checkered bottle", "a pink box",
                 "a purple striped donut")
DIVERSITY_PROMPTS = ("a vase", "a mug")
DIVERSITY_SEEDS = (0, 1, 2, 3)
STAGES = ("nerf", "geometry", "texture")


def read_prompts(path: Path) -> list[str]:
    """The prompts of a file, one per line; blank lines and `#` comments skipped (`ui3d.batch.read_prompts`)."""
    return [prompt.text for prompt in batch.read_prompts(path)]


def slug(text: str) -> str:
    """ASCII letters, digits and single dashes (a run tag)."""
    return "-".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@dataclass(frozen=True)
class Run:
    """One training run of the benchmark."""

    config: str
    prompt: str
    seed: int = 0
    all_stages: bool = False
    overrides: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tag(self) -> str:
        return f"{slug(Path(self.config).stem)}-{slug(self.prompt)}-s{self.seed}{'-all' if self.all_stages else ''}"

    @property
    def last_stage(self) -> str:
        return STAGES[-1] if self.all_stages else STAGES[0]


# --- what a worker does (one CPU thread) -------------------------------------------------------------------
def find_run(root: Path, tag: str) -> Path | None:
    """The run directory `<root>/<name>/<tag>@<timestamp>` of a tag, if one was started (a directory without
    `config.yaml`, left by a run killed before it began, is not one: it is started anew)."""
    found = sorted(p for family in root.glob("*") if family.is_dir() for p in family.glob(f"{tag}@*")
                   if (p / "config.yaml").is_file())
    return found[-1] if found else None


def train(run: Run, root: Path) -> Path:
    """Train `run` under `root` (reusing a finished run, resuming an unfinished one); its run directory."""
    from ui3d import cli

    existing = find_run(root, run.tag)
    if existing is not None and (existing / run.last_stage / "done").is_file():
        return existing
    args = ["--config", run.config, f"exp_root_dir={root}", f"tag={run.tag}", f"prompt={run.prompt}",
            f"seed={run.seed}", "trainer.log_every_n_steps=1", *run.overrides]
    args += [] if run.all_stages else ["--stage", "nerf"]
    args += [f"resume={existing}"] if existing is not None else []
    code = cli.main(args)
    if code != 0:
        raise RuntimeError(f"launch.py {' '.join(args)} exited with {code}")
    return find_run(root, run.tag)


def stage_seconds(run_dir: Path, stage: str) -> float:
    """Training seconds of a finished stage (its `done` file: "<steps> steps, <seconds> s")."""
    return float((run_dir / stage / "done").read_text().split(",")[1].split()[0])


def turntable_frames(run_dir: Path) -> torch.Tensor:
    """The stage-1 turntable's frames [N, H, W, 3] in [0, 1]."""
    from ui3d.export.images import read_video

    return read_video(next(iter(sorted((run_dir / "nerf" / "save").glob("turntable.*")))))


def score_turntable(run_dir: Path, prompt: str, frames: torch.Tensor) -> dict:
    """Classifier scores, collapse, coverage and size ratio of a run's stage-1 turntable `frames`."""
    from omegaconf import OmegaConf

    from ui3d.benchmarks.score_run import prompt_labels, score_frames
    from ui3d.metrics.stage1 import collapse, coverage, reference_coverage

    cfg = OmegaConf.load(run_dir / "config.yaml")
    background = tuple(cfg.system.background.get("color", (1.0, 1.0, 1.0)))
    scores = score_frames(frames, prompt)
    cover, border = coverage(frames, background)
    data = cfg.get("data", {})
    reference = reference_coverage(prompt_labels(prompt)["category"], len(frames), data.get("eval_elevation_deg", 15.0),
                                   data.get("eval_camera_distance", 1.3), data.get("eval_fovy_deg", 55.0),
                                   frames.shape[1])
    return {**scores, "collapse": collapse(frames, background), "coverage": cover, "border": border,
            "size": cover / reference}


def ratio_scores(run_dir: Path) -> dict | None:
    """`ui3d.metrics.stage1.ratio_statistics` of the stage-1 log after the rkl warm start."""
    from omegaconf import OmegaConf

    from ui3d.metrics.stage1 import ratio_statistics, read_metrics

    guidance = OmegaConf.load(run_dir / "config.yaml").system.guidance
    logs = run_dir / "nerf" / "logs" / "metrics.csv"
    return ratio_statistics(read_metrics(logs), int(guidance.get("rkl_warm_start_steps", 0) or 0))


def mesh_scores(run_dir: Path, prompt: str) -> dict:
    """`mesh_quality` of each stage's mesh (exporting the NeRF and geometry stages' first where needed)."""
    from omegaconf import OmegaConf

    from ui3d.benchmarks.mesh_quality import score_mesh
    from ui3d.export.mesh import export_stage

    cfg = OmegaConf.load(run_dir / "config.yaml")
    out = {}
    for stage in STAGES:
        obj = run_dir / stage / "save" / "export" / "model.obj"
        if not obj.is_file():
            export_stage(cfg, stage, run_dir, turntable_views=0)
        score = score_mesh(obj, prompt)
        out[stage] = {k: v for k, v in score.items() if k != "by_category"}
    return out


def nerf_points(run_dir: Path, n: int = 4000) -> torch.Tensor:
    """Surface points of the NeRF's marching-cubes mesh, scaled into the unit box (for pairwise Chamfer)."""
    from omegaconf import OmegaConf

    from ui3d.benchmarks.mesh_quality import unit_box_points
    from ui3d.export.isosurface import extract_mesh
    from ui3d.systems.runner import previous_geometry

    geometry = previous_geometry(OmegaConf.load(run_dir / "config.yaml"), "nerf", run_dir)
    return unit_box_points(extract_mesh(geometry.eval(), 64), n)


def train_and_score(run: Run, root: Path, diversity: bool = False) -> dict:
    """The worker's task: train, then every score the run supports."""
    run_dir = train(run, root)
    frames = turntable_frames(run_dir)
    result = {"run": str(run_dir), "seconds": {s: stage_seconds(run_dir, s) for s in STAGES
                                               if (run_dir / s / "done").is_file()},
              "turntable": score_turntable(run_dir, run.prompt, frames), "ratio": ratio_scores(run_dir)}
    if run.all_stages:
        result["meshes"] = mesh_scores(run_dir, run.prompt)
    if diversity:
        from ui3d.benchmarks.score_run import classifier_features

        result["points"] = nerf_points(run_dir).tolist()
        result["features"] = classifier_features(frames[::5]).tolist()
    return result


def teacher_samples(prompt: str, n: int, seed: int = 0) -> dict:
    """The embedded teacher's own distribution for `prompt`: n samples (50-step DDIM, CFG 7.5, random view
    suffixes), the colours the classifier names and its features."""
    from ui3d.benchmarks.embedded_teacher import sample_prompts
    from ui3d.benchmarks.score_run import classifier_features
    from ui3d.teachers.embedded.classifier import load_classifier

    images = sample_prompts(prompt, n, seed)
    colors = load_classifier().predict(images)["color"]
    return {"colors": colors, "features": classifier_features(images.permute(0, 2, 3, 1)).tolist()}


def teacher_scores(prompt: str, n: int, seed: int = 0, steps: int = 25) -> dict:
    """What the embedded teacher itself makes of `prompt`, scored as a turntable is: n samples (`steps`-step DDIM
    as the real pool's, CFG 7.5, the view suffixes of stage-1 cameras) through the same classifier. A 3D run distilled from it
    can hardly name the category, colour or pattern more often than its teacher does: the suite's ceiling."""
    from ui3d.benchmarks.embedded_teacher import sample_prompts
    from ui3d.benchmarks.score_run import score_frames

    return score_frames(sample_prompts(prompt, n, seed, steps).permute(0, 2, 3, 1), prompt)


# --- tables -----------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}"


def _percent(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


def _size(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def config_name(config: str) -> str:
    return Path(config).stem


def summary(results: dict[Run, dict], runs: list[Run]) -> dict:
    """Averages of one config's runs: category over all prompts; colour and pattern over the prompts that
    name one; prompts with category ≥ 50 %; collapses; ratio statistics; stage-1 seconds."""
    scored = [results[r] for r in runs]
    acc = [s["turntable"]["accuracy"] for s in scored]
    ratio = [s["ratio"] for s in scored if s["ratio"]]

    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.mean(values) if values else None

    return {"category": mean(a.get("category") for a in acc), "color": mean(a.get("color") for a in acc),
            "pattern": mean(a.get("pattern") for a in acc),
            "category_min": min(a.get("category", 0.0) for a in acc),
            "prompts_half": sum(a.get("category", 0.0) >= 0.5 for a in acc), "prompts": len(acc),
            "collapses": [(r.prompt, results[r]["turntable"]["collapse"]) for r in runs
                          if results[r]["turntable"]["collapse"]],
            "size": mean(s["turntable"].get("size") for s in scored),
            "size_max": max((s["turntable"]["size"] for s in scored if "size" in s["turntable"]), default=None),
            "at_clamp": mean(x["at_clamp"] for x in ratio), "h_std": mean(x["h_std"] for x in ratio),
            "h_p10": mean(x["h_p10"] for x in ratio), "h_p90": mean(x["h_p90"] for x in ratio),
            "h_within": mean(x.get("h_within") for x in ratio),
            "seconds": mean(s["seconds"].get("nerf") for s in scored)}


def teacher_row(teacher: dict[str, dict], prompts: list[str]) -> str:
    """The summary table's row of the teacher's own samples (category, colour, pattern; the rest does not apply)."""
    acc = [teacher[p]["accuracy"] for p in prompts]

    def mean(key):
        values = [a[key] for a in acc if key in a]
        return statistics.mean(values) if values else None

    n = teacher[prompts[0]]["frames"]
    category = [a.get("category", 0.0) for a in acc]
    return (f"| the teacher's own samples ({n} per prompt) | {_percent(mean('category'))} | "
            f"{_percent(min(category))} | {sum(c >= 0.5 for c in category)} / {len(acc)} | "
            f"{_percent(mean('color'))} | {_percent(mean('pattern'))} |" + " — |" * 5)


def _cell(scores: dict) -> str:
    """`category/colour/pattern` % (what the prompt names), then the most frequent category."""
    acc = scores["accuracy"]
    return "/".join(_pct(acc[k]) for k in ("category", "color", "pattern") if k in acc) + f" {scores['categories'][0][0]}"


def suite_tables(results: dict[Run, dict], configs: list[str], prompts: list[str],
                 teacher: dict[str, dict] | None = None) -> str:
    by_config = {c: [r for r in results if r.config == c] for c in configs}
    rows = [teacher_row(teacher, prompts)] if teacher else []
    for config in configs:
        runs = [next(r for r in by_config[config] if r.prompt == p) for p in prompts]
        s = summary(results, runs)
        collapsed = ", ".join(f"{p} ({kind})" for p, kind in s["collapses"]) or "none"
        ratio = "— | —" if s["at_clamp"] is None else (
            f"{_percent(s['at_clamp'])} | {s['h_std']:.2f} ({s['h_p10']:.2f}–{s['h_p90']:.2f})"
            + ("" if s["h_within"] is None else f", in-step {s['h_within']:.2f}"))
        rows.append(f"| {config_name(config)} | {_percent(s['category'])} | {_percent(s['category_min'])} "
                    f"| {s['prompts_half']} / {s['prompts']} | {_percent(s['color'])} | {_percent(s['pattern'])} "
                    f"| {collapsed} | {_size(s['size'])} ({_size(s['size_max'])}) | {ratio} | {s['seconds']:.0f} |")
    head = ("| config | category (mean) | category (worst prompt) | prompts ≥ 50 % category | colour | pattern "
            "| collapses | size ratio (max) | steps at a clamp | h(r) sd (p10–p90 of step means), in-step sd | stage-1 s |\n|" + " --- |" * 11)
    columns = (["teacher"] if teacher else []) + [config_name(c) for c in configs]
    per_prompt = ["| prompt | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for prompt in prompts:
        cells = [_cell(teacher[prompt])] if teacher else []
        for config in configs:
            t = results[next(r for r in by_config[config] if r.prompt == prompt)]["turntable"]
            cells.append(f"{_cell(t)} {_size(t.get('size'))}" + (f" **{t['collapse']}**" if t["collapse"] else ""))
        per_prompt.append(f"| {prompt} | " + " | ".join(cells) + " |")
    return "\n".join([head, *rows, "", "Per prompt: % of the 30 stage-1 turntable frames classified as the "
                      "prompt's category / colour / pattern (what the prompt names), then the most frequent "
                      "category, then the size ratio (the NeRF's silhouette over the largest ground-truth object's "
                      "of that category, at the same framing)" + ("; `teacher`: the same scores of the teacher's "
                      "own samples of the prompt (the ceiling of what distilling it can name)" if teacher else "")
                      + ".", "", *per_prompt])


def seed_tables(results: dict[Run, dict], configs: list[str], prompts: list[str], seeds: list[int]) -> str:
    """Each config's suite averages as mean ± sd over seeds, and each prompt's category mean (min–max) over
    seeds: how much of a difference between configs one seed can move."""
    def spread(values):
        values = [v for v in values if v is not None]
        if not values:
            return "—"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{_percent(statistics.mean(values))} ± {sd * 100:.0f}"

    run = {(r.config, r.prompt, r.seed): r for r in results}
    rows, per_prompt = [], []
    for config in configs:
        per_seed = [summary(results, [run[config, p, seed] for p in prompts]) for seed in seeds]
        category = {p: [results[run[config, p, seed]]["turntable"]["accuracy"].get("category", 0.0) for seed in seeds]
                    for p in prompts}
        half = sum(statistics.mean(c) >= 0.5 for c in category.values())
        collapses = sum(len(s["collapses"]) for s in per_seed)
        rows.append(f"| {config_name(config)} | {spread([s['category'] for s in per_seed])} "
                    f"| {_percent(min(statistics.mean(c) for c in category.values()))} | {half} / {len(prompts)} "
                    f"| {spread([s['color'] for s in per_seed])} | {spread([s['pattern'] for s in per_seed])} "
                    f"| {collapses} / {len(prompts) * len(seeds)} |")
        per_prompt.append(category)
    head = ("| config | category (mean ± sd over seeds) | worst prompt (its mean) | prompts ≥ 50 % (mean over seeds) "
            "| colour | pattern | collapsed runs |\n|" + " --- |" * 7)
    lines = [head, *rows, "", "Per prompt: category % of the turntable frames, mean over seeds (min–max).", "",
             "| prompt | " + " | ".join(config_name(c) for c in configs) + " |", "|" + " --- |" * (len(configs) + 1)]
    for prompt in prompts:
        cells = [f"{_pct(statistics.mean(c[prompt]))} ({_pct(min(c[prompt]))}–{_pct(max(c[prompt]))})"
                 for c in per_prompt]
        lines.append(f"| {prompt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sphere_is_truth(mesh: dict) -> bool:
    """The sphere baseline is one of the category's own shapes (the ball): its Chamfer is within 10 % of the
    sampling floor, so a mesh falls below it only by sampling noise."""
    return "floor" in mesh and mesh["sphere"] <= 1.1 * mesh["floor"]


def mesh_table(results: dict[Run, dict]) -> str:
    runs = [r for r in results if r.all_stages]
    if not runs:
        return ""
    head = ("| prompt | NeRF mesh: category / colour views, Chamfer | after stage 2 (geometry) "
            "| after stage 3 (texture) | sphere Chamfer |\n|" + " --- |" * 5)
    rows, final = [], []
    for run in runs:
        meshes = results[run]["meshes"]
        cells = []
        for stage in STAGES:
            m = meshes[stage]
            views = " / ".join(f"{m['views'][k]}" for k in ("category", "color") if k in m["views"])
            cells.append(f"{views} of 8, {m['chamfer']:.3f}")
        rows.append(f"| {run.prompt} | " + " | ".join(cells) + f" | {meshes['texture']['sphere']:.3f} |")
        final.append(meshes["texture"])
    n = len(final)
    cat6 = sum(m["views"]["category"] >= 6 for m in final)
    colored = [m for m in final if "color" in m["views"]]
    col7 = sum(m["views"]["color"] >= 7 for m in colored)
    below = sum(m["chamfer"] < m["sphere"] for m in final)
    lines = [head, *rows, "", f"Exported meshes (after stage 3): category on ≥ 6 / 8 views for {cat6} / {n} "
             f"prompts ({_pct(cat6 / n)} %); colour on ≥ 7 / 8 views for {col7} / {len(colored)} prompts that name "
             f"one; Chamfer below the sphere's for {below} / {n} ({_pct(below / n)} %)."]
    spheres = [m for m in final if sphere_is_truth(m)]
    if spheres:
        others = [m for m in final if not sphere_is_truth(m)]
        lines[-1] += (f" The sphere is itself a ground-truth shape of {len(spheres)} prompts' category: its Chamfer "
                      f"there is the sampling floor ({statistics.mean(m['floor'] for m in spheres):.3f}, what an exact "
                      f"copy scores), theirs {', '.join(format(m['chamfer'], '.3f') for m in spheres)}; below the sphere's "
                      f"on {sum(m['chamfer'] < m['sphere'] for m in others)} / {len(others)} of the others.")
    for stage in STAGES:
        mean_chamfer = statistics.mean(results[r]["meshes"][stage]["chamfer"] for r in runs)
        mean_cat = statistics.mean(results[r]["meshes"][stage]["views"]["category"] for r in runs)
        lines.append(f"- {stage} mesh: mean Chamfer {mean_chamfer:.3f}, mean category views {mean_cat:.1f} / 8")
    return "\n".join(lines)


def mesh_picture(meshes: list[tuple[str, Path]], out: Path, views: int = 2, size: int = 96, columns: int = 6
                 ) -> None:
    """A PNG of exported meshes (prompt, model.obj), `views` turntable views each (azimuth 0°, 360/views, …),
    rendered as the export's turntable is, the prompt under each; `columns` meshes per row."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ui3d.benchmarks.mesh_quality import load_exported
    from ui3d.data.cameras import orbit_cameras
    from ui3d.export.turntable import render_textured

    cams = orbit_cameras(views, 15.0, 1.8, 55.0)  # the whole box (radius 0.7) in view
    label, width = 14, size * views
    rows = (len(meshes) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * width, rows * (size + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (prompt, obj) in enumerate(meshes):
        mesh, texture = load_exported(Path(obj))
        with torch.no_grad():
            images = render_textured(mesh, texture, cams.c2w, cams.fovy, size)
        tile = (torch.cat(list(images), dim=1).clamp(0, 1).numpy() * 255).astype(np.uint8)
        x, y = (i % columns) * width, (i // columns) * (size + label)
        sheet.paste(Image.fromarray(tile), (x, y))
        draw.text((x + 3, y + size + 1), prompt, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    sheet.save(tmp, format="PNG")
    tmp.replace(out)


def pairwise(values: list[torch.Tensor], distance) -> float:
    pairs = [(a, b) for i, a in enumerate(values) for b in values[i + 1:]]
    return statistics.mean(distance(a, b) for a, b in pairs) if pairs else float("nan")


def diversity_table(results: dict[Run, dict], teacher: dict[str, dict], configs: list[str]) -> str:
    from ui3d.benchmarks.mesh_quality import chamfer

    def feature_spread(features):
        x = torch.tensor(features)
        return float(torch.cdist(x, x).sum() / max(len(x) * (len(x) - 1), 1))

    head = ("| prompt | model | colours (one per seed, the classifier's majority) | distinct colours "
            "| pairwise Chamfer between seeds | feature spread |\n|" + " --- |" * 6)
    rows = []
    for prompt, sample in teacher.items():
        counts = Counter(sample["colors"])
        rows.append(f"| {prompt} | teacher ({len(sample['colors'])} samples) | "
                    + ", ".join(f"{c} {n}" for c, n in counts.most_common()) + f" | {len(counts)} | — "
                    f"| {feature_spread(sample['features']):.2f} |")
        for config in configs:
            runs = sorted((r for r in results if r.config == config and r.prompt == prompt
                           and "points" in results[r]), key=lambda r: r.seed)
            if not runs:
                continue
            colors = [results[r]["turntable"]["colors"][0][0] for r in runs]
            shapes = pairwise([torch.tensor(results[r]["points"]) for r in runs], chamfer)
            features = [f for r in runs for f in results[r]["features"]]
            rows.append(f"| {prompt} | {config_name(config)} ({len(runs)} seeds) | {', '.join(colors)} "
                        f"| {len(set(colors))} | {shapes:.3f} | {feature_spread(features):.2f} |")
    return "\n".join([head, *rows])


# --- the command ---------------------------------------------------------------------------------------------
def plan(args) -> tuple[dict[str, Task], dict[str, Run], list[str], list[str]]:
    """Tasks keyed by name, the run behind each training task (by tag), the configs and prompts of the suite
    part. A diversity run that the suite part already has (same seed) is that run, scored for diversity too."""
    prompts = list(args.prompts or (QUICK_PROMPTS if args.quick else read_prompts(args.prompt_file)))
    configs = list(args.configs or ((HEADLINE,) if args.quick else CONFIGS))
    overrides = tuple(args.set)
    runs: dict[tuple[str, str, int], Run] = {}
    if args.part in ("suite", "all"):
        for seed in args.suite_seeds:
            for config in configs:
                for prompt in prompts:
                    all_stages = config == HEADLINE and not args.quick and not args.stage1_only
                    runs[config, prompt, seed] = Run(config, prompt, seed, all_stages, overrides)
    diverse = set()
    if args.part in ("diversity", "all"):
        for config in configs:
            for prompt in DIVERSITY_PROMPTS:
                for seed in args.seeds:
                    runs.setdefault((config, prompt, seed), Run(config, prompt, seed, False, overrides))
                    diverse.add(runs[config, prompt, seed].tag)
    tasks = {}
    ordered = sorted(runs.values(), key=lambda r: (not r.all_stages, "uniinstruct" not in r.config))
    for run in ordered:  # the longest first: three-stage runs, then Uni-Instruct, then the rest
        tasks[run.tag] = Task(train_and_score, (run, args.root, run.tag in diverse))
    if args.part in ("suite", "all") and args.teacher_frames:
        for prompt in prompts:
            tasks[f"teacher-score {prompt}"] = Task(teacher_scores, (prompt, args.teacher_frames))
    if args.part in ("diversity", "all"):
        for prompt in DIVERSITY_PROMPTS:
            tasks[f"teacher {prompt}"] = Task(teacher_samples, (prompt, args.teacher_samples))
    return tasks, {r.tag: r for r in runs.values()}, configs, prompts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the headline config's stage 1 on 6 prompts")
    p.add_argument("--part", choices=("suite", "diversity", "all"), default=None,
                   help="default: all (suite only with --quick)")
    p.add_argument("--configs", nargs="+", help=f"configs side by side (default: {' '.join(CONFIGS)})")
    p.add_argument("--prompts", nargs="+", help="prompts (default: every line of --prompt-file)")
    p.add_argument("--prompt-file", type=Path, default=SUITE)
    p.add_argument("--seeds", type=int, nargs="+", default=list(DIVERSITY_SEEDS), help="diversity seeds")
    p.add_argument("--suite-seeds", type=int, nargs="+", default=[0],
                   help="seeds of the suite part: every config × prompt once per seed, a table per seed and one "
                        "across them (mean ± sd over seeds)")
    p.add_argument("--teacher-samples", type=int, default=64, help="teacher samples per diversity prompt")
    p.add_argument("--teacher-frames", type=int, default=30,
                   help="the teacher's own samples per suite prompt, scored beside the runs (0: none)")
    p.add_argument("--stage1-only", action="store_true", help="the headline config too runs stage 1 only")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every run")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one CPU thread each)")
    p.add_argument("--root", type=Path, help="where runs go; an earlier benchmark's root is continued")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "prompt_suite.md")
    args = p.parse_args(argv)
    args.part = args.part or ("suite" if args.quick else "all")
    args.root = args.root or ROOT / "outputs" / "bench-prompt-suite" / time.strftime("%Y%m%d-%H%M%S")
    args.root = args.root.resolve()
    tasks, runs, configs, prompts = plan(args)
    start = time.time()
    done, seconds = run_tasks(tasks, args.jobs)
    wall = time.time() - start
    results = {runs[k]: v for k, v in done.items() if k in runs}
    command = "python -m ui3d.benchmarks.prompt_suite " + shlex.join(sys.argv[1:] if argv is None else argv)
    sections = [f"# Text-to-3D on the prompt suite\n\n`{command}`: {len(runs)} runs, {args.jobs} worker processes "
                f"× 1 CPU thread" + (f", overrides `{' '.join(args.set)}`" if args.set else "") + "."]
    if args.part in ("suite", "all"):
        seeds = args.suite_seeds
        teacher = {p: done[f"teacher-score {p}"] for p in prompts} if args.teacher_frames else None
        if len(seeds) > 1:
            sections += [f"## Stage 1 (NeRF) turntables across seeds {', '.join(map(str, seeds))}",
                         seed_tables(results, configs, prompts, seeds)]
        for seed in seeds:
            ours = [r for r in results if r.seed == seed and r.prompt in prompts]
            suite = {r: results[r] for r in sorted(ours, key=lambda r: prompts.index(r.prompt))}  # prompts' order
            title = "## Stage 1 (NeRF) turntables" + (f", seed {seed}" if len(seeds) > 1 else "")
            sections += [title, suite_tables(suite, configs, prompts, teacher)]
        ours = [r for r in results if r.seed == seeds[0] and r.prompt in prompts]
        suite = {r: results[r] for r in sorted(ours, key=lambda r: prompts.index(r.prompt))}
        meshes = mesh_table(suite)
        if meshes:
            picture = args.out.with_name(f"{args.out.stem}_meshes.png")
            mesh_picture([(r.prompt, Path(v["run"]) / "texture" / "save" / "export" / "model.obj")
                          for r, v in suite.items() if r.all_stages], picture)
            sections += ["## Meshes of the headline config", meshes,
                         f"The exported meshes (after stage 3), two views each: ![meshes]({picture.name})"]
    if args.part in ("diversity", "all"):
        teacher = {p: done[f"teacher {p}"] for p in DIVERSITY_PROMPTS}
        sections += [f"## Diversity: {', '.join(repr(p) for p in DIVERSITY_PROMPTS)}, seeds "
                     f"{', '.join(map(str, args.seeds))}", diversity_table(results, teacher, configs)]
    sections.append(f"Wall time of this benchmark: {wall / 60:.1f} min on {args.jobs} worker processes "
                    f"({sum(seconds.values()) / 60:.1f} task-minutes).")
    text = "\n\n".join(sections) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    raw = {k: {kk: vv for kk, vv in v.items() if kk not in ("points", "features")} for k, v in done.items()
           if k in runs or k.startswith("teacher-score ")}
    (args.root / "results.json").write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
