"""What the browser app reads from an outputs folder: its runs, and each run's files, never anything outside it.

A run is `<outputs>/<name>/<tag>@<timestamp>/` with a `config.yaml` (`ui3d.run`); what it finished and made is read
by `ui3d.api.RunResult`. A run is named to and by the browser as its path relative to the outputs folder
(`uniinstruct-fkl/a_vase@20261201-101500`); `resolve_run` turns such a name back into a directory and refuses every
name that leads outside the folder (an absolute path, `..`, a symbolic link out).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ui3d.api import RunResult
from ui3d.config import SHORTHANDS, ConfigError, stage_block, stage_names


class OutsideOutputs(ValueError):
    """A run name or file the app may not read: it is not a run inside the outputs folder."""


def inside(outputs: Path, path: Path) -> bool:
    """Whether `path`, with every symbolic link followed, lies in the outputs folder."""
    try:
        path.resolve().relative_to(outputs.resolve())
        return True
    except (ValueError, OSError):
        return False


def resolve_run(outputs: Path, name: str) -> Path:
    """The run directory a browser names (relative to `outputs`); `OutsideOutputs` for anything else."""
    name = str(name or "").strip()
    if not name:
        raise OutsideOutputs("no run selected: pick one from the list")
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise OutsideOutputs(f"'{name}' is not a run of this app: give a run's path inside the outputs folder, "
                             "as the run list shows it (e.g. uniinstruct-fkl/a_vase@20261201-101500)")
    run_dir = outputs / relative
    if not inside(outputs, run_dir):
        raise OutsideOutputs(f"'{name}' leads outside the outputs folder {outputs} (a symbolic link?): refused")
    if not (run_dir / "config.yaml").is_file():
        raise OutsideOutputs(f"'{name}' is not a run: {run_dir} has no config.yaml")
    return run_dir


def _files(outputs: Path, paths) -> list[Path]:
    return [p for p in paths if p.is_file() and inside(outputs, p)]


@dataclass
class Run:
    """One run as the app lists and shows it."""

    name: str
    """Its path relative to the outputs folder."""
    run_dir: Path
    config: str
    prompt: str
    stages: list[str]
    max_steps: dict[str, int | None]
    result: RunResult
    started: float
    """Modification time of `config.yaml` (written when the run started, or resumed with changes)."""
    glb: Path | None = None
    turntables: list[Path] = field(default_factory=list)
    grids: list[Path] = field(default_factory=list)
    """The stages' saved images (validation views `it<step>-<view>.png`), newest first: last stage, last step."""
    scores: list[Path] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return all(s in self.result.stage_steps for s in self.stages)

    def stage_summary(self) -> str:
        """`nerf 600 steps 225 s · geometry 400 steps 32 s · texture …` (… : not finished)."""
        parts = []
        for s in self.stages:
            if s in self.result.stage_steps:
                parts.append(f"{s} {self.result.stage_steps[s]} steps {self.result.stage_seconds[s]:.0f} s")
            else:
                parts.append(f"{s} not finished (of {self.max_steps.get(s) or '?'})")
        return " · ".join(parts)


def stage_plan(run_dir: Path) -> dict[str, int | None]:
    """The stages of a run in order, each with its `trainer.max_steps` (None where the config does not say)."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    plan = {}
    for s in stage_names(cfg):
        try:
            plan[s] = int(stage_block(cfg, s).trainer.max_steps)
        except (ConfigError, AttributeError, TypeError, ValueError):
            plan[s] = None
    return plan


def read_run(outputs: Path, run_dir: Path) -> Run:
    """A run's config, progress and files (the files inside the outputs folder only)."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    plan = stage_plan(run_dir)
    result = RunResult.read(run_dir)
    run = Run(name=run_dir.relative_to(outputs).as_posix(), run_dir=run_dir, config=str(cfg.get("name", "")),
              prompt=str(OmegaConf.select(cfg, SHORTHANDS["prompt"], default="") or ""), stages=list(plan),
              max_steps=plan, result=result, started=(run_dir / "config.yaml").stat().st_mtime)
    run.glb = result.glb if result.glb is not None and inside(outputs, result.glb) else None
    save = [run_dir / s / "save" for s in run.stages]
    run.turntables = _files(outputs, _turntables(save))
    run.grids = _files(outputs, [p for d in reversed(save) for p in sorted(d.glob("*.png"), key=_newest_first)])
    run.scores = _files(outputs, [p for d in save for p in (d / "score.md", d / "export" / "quality.md")])
    return run


def _turntables(save: list[Path]) -> list[Path]:
    """The exported meshes' turntables (last stage first), then each stage's."""
    exported = [p for d in reversed(save) for p in sorted((d / "export").glob("turntable.*"))]
    return exported + [p for d in save for p in sorted(d.glob("turntable.*"))]


def _newest_first(path: Path) -> tuple:
    """A stage's images: the last step's first, its views in order (`it<step>-<view>.png`); others, such as a 2D
    run's final `samples.png`, before them."""
    step, _, view = path.stem.removeprefix("it").partition("-")
    return (-int(step) if step.isdigit() else -math.inf, view, path.name)


def list_runs(outputs: Path) -> list[Run]:
    """Every run under `outputs` (`<name>/<tag>/config.yaml`), newest first; unreadable ones are skipped."""
    runs = []
    for config in outputs.glob("*/*/config.yaml"):
        if not inside(outputs, config):
            continue
        try:
            runs.append(read_run(outputs, config.parent))
        except (OSError, ValueError, KeyError, AttributeError):  # a run being written, a foreign folder
            continue
    return sorted(runs, key=lambda r: r.started, reverse=True)


def metrics(run: Run) -> list[dict]:
    """Each stage's `logs/metrics.csv` as rows {stage, step, metric, value} (empty cells left out)."""
    rows = []
    for stage in run.stages:
        path = run.run_dir / stage / "logs" / "metrics.csv"
        if not (path.is_file() and inside(run.run_dir, path)):
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = row.get("step")
                for key, value in row.items():
                    if key in ("epoch", "step") or not value or not step:
                        continue
                    try:
                        rows.append({"stage": stage, "step": int(float(step)), "metric": key, "value": float(value)})
                    except ValueError:
                        continue
    return rows
