"""The Python API: what `python launch.py` does, called from Python, with the result as an object.

    import ui3d
    result = ui3d.generate("a red vase", steps=50)                     # text-to-3D, the headline config
    result.glb, result.stage_seconds                                   # the exported mesh, time per stage
    results = ui3d.generate(["a red vase", "a blue mug"], steps=50)    # a batch: a rerun skips finished prompts
    run = ui3d.distill("distill2d/uniinstruct-fkl.yaml", steps=100)    # a one-step 2D student
    student = ui3d.load_student(run.run_dir)
    images = student.sample(16, seed=0)                                # [16, C, H, W] in [0, 1]

Overrides are launch.py's `key=value` pairs as keyword arguments (`steps=50`, `seed=1`, `tag="x"`); dotted keys go
through a dict: `ui3d.generate("a vase", **{"system.guidance.divergence": "jkl"})`. Bad input raises
`ui3d.LaunchError` with launch.py's one-line message; Ctrl-C leaves the run resumable
(`ui3d.generate(..., resume=result.run_dir)`) and raises `KeyboardInterrupt`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


class LaunchError(RuntimeError):
    """launch.py refused the run (exit status 2) or it was stopped; `code` is launch.py's exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass
class RunResult:
    """What a run made: its directory, each stage's steps and seconds, and the files a user opens."""

    run_dir: Path
    stage_steps: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    glb: Path | None = None
    """`model.glb` of the last stage that exported a mesh."""
    obj: Path | None = None
    turntable: Path | None = None
    """The turntable of the exported mesh, else of the first stage."""

    @classmethod
    def read(cls, run_dir: Path | str) -> RunResult:
        run_dir = Path(run_dir)
        result = cls(run_dir)
        for stage in sorted(p.parent for p in run_dir.glob("*/done")):
            steps, seconds = stage.joinpath("done").read_text().split(",")[:2]
            result.stage_steps[stage.name] = int(steps.split()[0])
            result.stage_seconds[stage.name] = float(seconds.split()[0])
        exports = sorted(run_dir.glob("*/save/export/model.glb"), key=lambda p: p.stat().st_mtime)
        if exports:
            export = exports[-1].parent
            result.glb, result.obj = export / "model.glb", export / "model.obj"
            result.turntable = next(iter(export.glob("turntable.*")), None)
        if result.turntable is None:
            result.turntable = next(iter(sorted(run_dir.glob("*/save/turntable.*"))), None)
        return result


def _launch(args: list[str], overrides: dict, prompts: list[str] | None = None) -> RunResult | list[RunResult]:
    from ui3d import cli

    argv = [*args, *(f"{key}={value}" for key, value in overrides.items())]
    code = cli.main(argv, prompts=prompts)
    if code == 130:
        raise KeyboardInterrupt(f"interrupted; continue with resume={cli.last.run_dir}" if prompts is None else
                                "interrupted; generate the same prompts again to continue")
    if prompts is not None and code == 1:
        failed = [row for row in cli.last.batch if row.status == "failed"]
        raise LaunchError(f"{len(failed)} of {len(cli.last.batch)} prompts failed: "
                          + "; ".join(f"{row.prompt.text!r}: {row.error}" for row in failed), code)
    if code != 0:
        raise LaunchError(cli.last.error or f"launch.py {' '.join(argv)} exited with {code}", code)
    if prompts is not None:
        return [RunResult.read(row.run_dir) for row in cli.last.batch]
    return RunResult.read(cli.last.run_dir)


def generate(prompt: str | list[str], config: str = "uniinstruct-fkl.yaml", *, stage: str | None = None,
             **overrides) -> RunResult | list[RunResult]:
    """Text-to-3D: `python launch.py --config CONFIG prompt=PROMPT [--stage STAGE] key=value ...`. A list of
    prompts is a batch (`--prompts`): every prompt checked first, finished ones skipped, unfinished ones resumed;
    one result per prompt, or `LaunchError` (code 1) naming the prompts that failed once the others ran."""
    flags = ["--config", config, *(["--stage", stage] if stage else [])]
    if isinstance(prompt, str):
        return _launch([*flags, f"prompt={prompt}"], overrides)
    return _launch(flags, overrides, prompts=list(prompt))


def distill(config: str = "distill2d/uniinstruct-fkl.yaml", **overrides) -> RunResult:
    """A one-step 2D student: `python launch.py --config CONFIG key=value ...` (a `configs/distill2d/` recipe)."""
    return _launch(["--config", config], overrides)


class Student:
    """A trained one-step generator (its EMA weights) with the teacher's conditioning: `sample(n, seed)`."""

    def __init__(self, system):
        self.system = system.eval()

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, ema: bool = True) -> torch.Tensor:
        """n samples [n, C, H, W] in [0, 1] (images) or [n, D] (vector teachers), one network evaluation each."""
        x, _, _, _ = self.system.generate(n, torch.Generator().manual_seed(seed), ema=ema)
        teacher = self.system.teacher
        return teacher.to_images(x) if len(teacher.shape) > 1 else x

    def pipeline(self):
        """This student as a `ui3d.OneStepPipeline` (`save_pretrained(folder)` writes it as a 2D run does)."""
        from ui3d.distill2d.pipeline import OneStepPipeline

        return OneStepPipeline.from_system(self.system)


def load_student(run: Path | str) -> Student:
    """The student of a finished 2D run (its run directory or a `last.ckpt`), rebuilt from the run's
    `config.yaml` and its checkpoint (read with `weights_only=True`); `.pipeline()` makes it a diffusers
    `OneStepPipeline`."""
    from ui3d.systems.distill2d import Distill2DSystem

    return Student(Distill2DSystem.from_checkpoint(run))
