"""The command line of ui3d (what `python launch.py` runs), threestudio-style:
`python launch.py --config NAME [--dry-run] [--stage S] [--export] [--prompts FILE] [key=value ...]`.

`main(argv)` returns the exit status (0, 2 for bad input, 130 on Ctrl-C, 143 on SIGTERM); benchmarks and tests call
it in-process.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

DESCRIPTION = "ui3d launcher, threestudio-style: `python launch.py --config NAME [--dry-run] [key=value ...]`."

EPILOG = """\
overrides (after the flags, any number):
  key=value           any config key, dotted for nesting: trainer.max_steps=500 system.guidance.divergence=jkl
  prompt="a vase"     shorthand for system.prompt_processor.prompt
  prompt=@FILE        one run per line of FILE, as --prompts FILE
  seed=N              seed of every random generator
  steps=N             caps trainer.max_steps of every stage (quick runs)
  name=... tag=...    run directory <exp_root_dir>/<name>/<tag>@<timestamp>/ (tag defaults to the prompt)
  resume=RUN|LAST     continue a run with its own config.yaml (only steps, trainer.* and export keys may change)
  exp_root_dir=DIR    where runs go (default: outputs)

examples:
  python launch.py --config uniinstruct-fkl.yaml prompt="a vase"
  python launch.py --config uniinstruct-fkl.yaml prompt="a red mug" steps=2 --dry-run
  python launch.py --config uniinstruct-fkl.yaml --prompts prompts/suite.txt  # one run per prompt; rerun resumes
  python launch.py resume=outputs/uniinstruct-fkl/a_vase@20261201-101500       # continue a run as it was
  python launch.py resume=outputs/uniinstruct-fkl/a_vase@20261201-101500 steps=2000   # ... for longer
An unknown key exits with status 2 and names the key, where it was and the closest valid key.
"""


last = SimpleNamespace(run_dir=None, error=None, batch=None)
"""What the latest `main` call in this process did: its run directory, its error line and, for a prompt file,
its `ui3d.batch.Row`s (for `ui3d.api`)."""

RUN_DIR_ENV = "UI3D_RUN_DIR"
"""Set while a run trains, so that the processes DDP launches write into the same run directory."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch.py", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="a file under configs/ (e.g. uniinstruct-fkl.yaml) or a path; optional with "
                                         "resume=RUN_DIR, which continues with the run's own config.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the fully resolved config and write nothing")
    parser.add_argument("--stage", help="run only this stage (e.g. nerf, geometry, texture)")
    parser.add_argument("--export", action="store_true",
                        help="export the textured mesh of a run's stage (a 2D run: its student as a diffusers "
                             "pipeline in <run>/pipeline/; needs resume=RUN_DIR or resume=LAST; --stage picks the "
                             "stage, default: the last stage with a checkpoint)")
    parser.add_argument("--train", action="store_true", help="train (the default; threestudio's flag)")
    parser.add_argument("--validate", action="store_true",
                        help="render a trained stage's validation views again from its last checkpoint (needs "
                             "resume=RUN_DIR; --stage picks the stage, default: the last one with a checkpoint)")
    parser.add_argument("--test", action="store_true",
                        help="render a trained stage's test turntable again (as --validate)")
    parser.add_argument("--gpu", metavar="IDS",
                        help="threestudio's flag: train on these CUDA devices (e.g. 0 or 0,1): sets "
                             "CUDA_VISIBLE_DEVICES, trainer.accelerator=gpu and trainer.devices to their number")
    parser.add_argument("--prompts", metavar="FILE",
                        help="one run per prompt of FILE (one a line; blank lines and # comments skipped), each "
                             "checked before the first starts; a rerun skips finished prompts and resumes the others; "
                             "ends with a table (prompt, status, time, GLB)")
    parser.add_argument("--verbose", action="store_true",
                        help="keep Lightning's banners and tips, library warnings and model-loading bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (see below)")
    return parser.parse_intermixed_args(argv)  # flags may stand between overrides


def export(cfg, run_dir, stage: str | None, stages: list[str]) -> int:
    """`--export`: the textured mesh of one stage's last checkpoint, into `<run>/<stage>/save/export/` (a 2D
    run: its student as a diffusers pipeline, into `<run>/pipeline/`); a stage that has not finished is exported
    with a warning naming the step of its checkpoint."""
    from ui3d.config import ConfigError, stage_block
    from ui3d.registry import find
    from ui3d.systems.runner import checkpoint_step

    if run_dir is None:
        raise ConfigError("--export needs the run to export: resume=outputs/<name>/<tag>@<timestamp> or resume=LAST")
    done = [s for s in stages if (run_dir / s / "ckpts" / "last.ckpt").is_file()]
    if not done:
        raise ConfigError(f"{run_dir} has no stage checkpoint to export (stages: {', '.join(stages)})")
    stage = stage or done[-1]
    ckpt = run_dir / stage / "ckpts" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(f"stage '{stage}' of {run_dir} has no checkpoint {ckpt}; stages with one: {', '.join(done)}")
    step = checkpoint_step(ckpt)
    if not (run_dir / stage / "done").is_file():
        planned = stage_block(cfg, stage).trainer.max_steps
        print(f"warning: stage '{stage}' has not finished: exporting its checkpoint at step {step} of {planned}",
              file=sys.stderr)
    block = stage_block(cfg, stage)
    system = find(block.system_type)
    if hasattr(system, "export"):
        paths = system.export(block, run_dir / stage, cfg)
    else:
        from ui3d.export.mesh import export_stage

        paths = export_stage(cfg, stage, run_dir, **dict(block.system.get("export") or {}))
    print("\n".join(f"{key}: {path}" for key, path in paths.items()))
    return 0


def gpu_overrides(ids: str, dry_run: bool) -> list[str]:
    """threestudio's `--gpu 0,1`: those CUDA devices only (CUDA_VISIBLE_DEVICES), one process on each."""
    from ui3d.config import ConfigError

    devices = [d.strip() for d in ids.split(",")]
    if not all(d.isdigit() for d in devices):
        raise ConfigError(f"--gpu {ids}: give CUDA device numbers, e.g. --gpu 0 or --gpu 0,1")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    import torch

    if not dry_run and torch.cuda.device_count() < len(devices):
        raise ConfigError(f"--gpu {ids}: this machine has {torch.cuda.device_count()} CUDA device(s) visible; "
                          "drop --gpu to train on the CPU")
    return ["trainer.accelerator=gpu", f"trainer.devices={len(devices)}"]


def evaluate(cfg, run_dir, stage: str | None, stages: list[str], mode: str) -> int:
    """`--validate` / `--test`: one trained stage (default: the last with a checkpoint) rendered again."""
    from ui3d.config import ConfigError, stage_block
    from ui3d.registry import find

    done = [s for s in stages if (run_dir / s / "ckpts" / "last.ckpt").is_file()]
    stage = stage or (done[-1] if done else stages[-1])
    system = find(stage_block(cfg, stage).system_type)
    if not hasattr(system, "evaluate"):
        raise ConfigError(f"--{mode} renders text-to-3D stages; '{stage}' is a {stage_block(cfg, stage).system_type}")
    system.evaluate(stage_block(cfg, stage), run_dir / stage, cfg, mode)
    what = "validation views" if mode == "validate" else "turntable"
    print(f"{stage}: {what} rendered again into {run_dir / stage / 'save'}")
    return 0


def quiet() -> None:
    """Only what a run says for itself: no Lightning banners ("GPU available", tips), no warnings raised inside
    Lightning (deprecations, its checkpoint notes), no model-loading bars of transformers and diffusers."""
    import logging
    import warnings

    import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO: set them after it)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    warnings.filterwarnings("ignore", message=".*weights_only.*")
    try:
        import diffusers
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
        diffusers.utils.logging.set_verbosity_error()
    except (ImportError, AttributeError):
        pass


def summary(run_dir: Path, stages: list[str], cfg) -> str:
    """What a finished run made: each stage's steps and seconds, the files a user opens, how to score them."""
    from omegaconf import OmegaConf

    rows = []
    for name in stages:
        done = run_dir / name / "done"
        steps, seconds = done.read_text().split(",")[:2] if done.is_file() else ("not finished", "")
        rows.append((name, steps.strip(), seconds.strip()))
    width = max(len("stage"), *(len(name) for name, _, _ in rows))
    lines = ["", f"{'stage':{width}}  {'steps':12} time"] + [f"{n:{width}}  {st:12} {sec}" for n, st, sec in rows]
    export = next((run_dir / s / "save" / "export" for s in reversed(stages)
                   if (run_dir / s / "save" / "export" / "model.obj").is_file()), None)
    shown = [export / f for f in ("model.glb", "model.obj", "turntable.mp4")] if export else []
    shown += sorted((run_dir / stages[0] / "save").glob("turntable.*"))
    lines += ["", f"run: {run_dir}"] + [f"  {path.relative_to(run_dir)}" for path in shown if path.is_file()]
    if export is not None:
        lines += ["", f"score it: python -m ui3d.benchmarks.mesh_quality {run_dir}"]
    elif OmegaConf.select(cfg, "system.prompt_processor.prompt", default=None):
        lines += ["", f"score it: python -m ui3d.benchmarks.score_run {run_dir} --stage {stages[0]}"]
    return "\n".join(lines)


def bad_input() -> tuple[type[Exception], ...]:
    """The errors that mean the input cannot run: one `error:` line and exit status 2."""
    from ui3d.config import ConfigError
    from ui3d.registry import RegistryError
    from ui3d.teachers.loader import TeacherNotFound
    from ui3d.teachers.teacher import PromptError

    return ConfigError, RegistryError, PromptError, TeacherNotFound, FileNotFoundError


def refuse(err: Exception) -> int:
    """Say what was wrong (`error: ...` on stderr; `last.error`) and return exit status 2."""
    last.error = str(err)
    print(f"error: {err}", file=sys.stderr)
    return 2


def _terminate(signum, frame):
    from ui3d.systems.runner import Terminated

    raise Terminated("terminated")


def main(argv: list[str] | None = None, prompts: list[str] | None = None) -> int:
    """launch.py with these arguments; `prompts` (from Python) trains them as a prompt file would."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    last.run_dir = last.error = last.batch = None
    if not args.verbose:
        quiet()
    from ui3d import batch

    if prompts is not None:
        return batch.main(args, "prompts", [batch.Prompt(i, str(p).strip()) for i, p in enumerate(prompts, 1)])
    try:
        source = batch.prompt_file(args)
    except bad_input() as err:
        return refuse(err)
    if source is not None:
        return batch.main(args, source)
    from omegaconf import OmegaConf

    from ui3d.config import ConfigError, load_config, parse_overrides, stage_block, stage_names
    from ui3d.registry import find
    from ui3d.run import find_resume_dir, make_run_dir, resume_config, run_dir_for
    from ui3d.systems.runner import Terminated
    from ui3d.teachers.loader import BrokenTeacher, TeacherNotFound

    config = args.config
    try:
        modes = [flag for flag in ("train", "validate", "test", "export") if getattr(args, flag)]
        if len(modes) > 1:
            raise ConfigError(f"give one of --train, --validate, --test, --export, not {' and '.join('--' + m for m in modes)}")
        if args.gpu is not None:
            args.overrides = [*args.overrides, *gpu_overrides(args.gpu, args.dry_run)]
        resume = parse_overrides(args.overrides).get("resume")
        if config is None and not resume:
            raise ConfigError("give --config NAME (e.g. --config uniinstruct-fkl.yaml), or resume=RUN_DIR to continue "
                              "a run with its own config")
        file_cfg = load_config(config, args.overrides).cfg if config else None
        run_dir = find_resume_dir(file_cfg, resume)
        if (args.export or args.validate or args.test) and run_dir is None:
            raise ConfigError(f"--{modes[0]} needs the run: resume=outputs/<name>/<tag>@<timestamp> or resume=LAST")
        cfg = resume_config(run_dir, args.overrides, file_cfg, save=not args.dry_run) if run_dir is not None else file_cfg
        config = config or str(run_dir / "config.yaml")
        stages = [args.stage] if args.stage else stage_names(cfg)
        blocks = {name: stage_block(cfg, name) for name in stages}
        systems = {name: find(block.system_type) for name, block in blocks.items()}
        missing = None
        for name, system in systems.items():
            try:
                if hasattr(system, "check"):
                    system.check(blocks[name])
            except TeacherNotFound as err:  # a dry run still shows the config of a machine without the weights
                if not args.dry_run or isinstance(err, BrokenTeacher):
                    raise
                missing = err
        if args.dry_run:
            print(OmegaConf.to_yaml(cfg, resolve=True), end="")
            if missing is not None:
                print(f"# warning: {missing}")
            print(f"# run directory: {run_dir or run_dir_for(cfg, timestamp='<timestamp>')}")
            print(f"# stages: {', '.join(f'{n} ({b.trainer.max_steps} steps)' for n, b in blocks.items())}")
            return 0
        if args.export:
            return export(cfg, run_dir, args.stage, stage_names(cfg))
        if args.validate or args.test:
            return evaluate(cfg, run_dir, args.stage, stage_names(cfg), modes[0])
        # DDP re-runs this script once per extra process: those find the run directory in the environment
        run_dir = run_dir or Path(os.environ.get(RUN_DIR_ENV) or make_run_dir(cfg))
    except bad_input() as err:
        return refuse(err)
    last.run_dir = run_dir
    print(f"run directory: {run_dir}")
    os.environ[RUN_DIR_ENV] = str(run_dir)
    hint = f"continue with  python launch.py resume={run_dir}"
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        for name, system in systems.items():
            system.run(blocks[name], run_dir / name, cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {hint}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"\nterminated (SIGTERM): {hint}", file=sys.stderr)
        return 143
    except (ConfigError, TeacherNotFound) as err:  # found while the run starts a stage: a bad file, a missing stage
        return refuse(err)
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.environ.pop(RUN_DIR_ENV, None)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        print(summary(run_dir, list(systems), cfg))
    return 0
