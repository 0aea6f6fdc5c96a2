#!/usr/bin/env python
"""ui3d launcher, threestudio-style: `python launch.py --config NAME [--dry-run] [key=value ...]`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EPILOG = """\
overrides (after the flags, any number):
  key=value           any config key, dotted for nesting: trainer.max_steps=500 system.guidance.divergence=jkl
  prompt="a vase"     shorthand for system.prompt_processor.prompt
  seed=N              seed of every random generator
  steps=N             caps trainer.max_steps of every stage (quick runs)
  name=... tag=...    run directory <exp_root_dir>/<name>/<tag>@<timestamp>/ (tag defaults to the prompt)
  exp_root_dir=DIR    where runs go (default: outputs)

examples:
  python launch.py --config uniinstruct-fkl.yaml prompt="a vase"
  python launch.py --config uniinstruct-fkl.yaml prompt="a red mug" steps=2 --dry-run
An unknown key exits with status 2 and names the key, where it was and the closest valid key.
"""


RUN_DIR_ENV = "UI3D_RUN_DIR"
"""Set while a run trains, so that the processes DDP launches write into the same run directory."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch.py", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="a file under configs/ (e.g. uniinstruct-fkl.yaml) or a path")
    parser.add_argument("--dry-run", action="store_true", help="print the fully resolved config and write nothing")
    parser.add_argument("--stage", help="run only this stage (e.g. nerf, geometry, texture)")
    parser.add_argument("--export", action="store_true",
                        help="export the textured mesh of a finished run's stage (needs resume=RUN_DIR or resume=LAST; "
                             "--stage picks the stage, default: the last stage with a checkpoint)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (see below)")
    return parser.parse_intermixed_args(argv)  # flags may stand between overrides


def export(cfg, run_dir, stage: str | None, stages: list[str]) -> int:
    """`--export`: the textured mesh of one stage's last checkpoint, into `<run>/<stage>/save/export/`."""
    from ui3d.config import ConfigError
    from ui3d.export.mesh import export_stage

    if run_dir is None:
        raise ConfigError("--export needs the run to export: resume=outputs/<name>/<tag>@<timestamp> or resume=LAST")
    done = [s for s in stages if (run_dir / s / "ckpts" / "last.ckpt").is_file()]
    if not done:
        raise ConfigError(f"{run_dir} has no stage checkpoint to export (stages: {', '.join(stages)})")
    paths = export_stage(cfg, stage or done[-1], run_dir)
    print("\n".join(f"{key}: {path}" for key, path in paths.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from omegaconf import OmegaConf

    from ui3d.config import ConfigError, load_config, stage_block, stage_names
    from ui3d.registry import RegistryError, find
    from ui3d.run import find_resume_dir, make_run_dir, run_dir_for
    from ui3d.teachers.loader import TeacherNotFound
    from ui3d.teachers.teacher import PromptError

    try:
        resolved = load_config(args.config, args.overrides)
        cfg = resolved.cfg
        stages = [args.stage] if args.stage else stage_names(cfg)
        blocks = {name: stage_block(cfg, name) for name in stages}
        if args.dry_run:
            print(OmegaConf.to_yaml(cfg, resolve=True), end="")
            print(f"# run directory: {run_dir_for(cfg, timestamp='<timestamp>')}")
            print(f"# stages: {', '.join(f'{n} ({b.trainer.max_steps} steps)' for n, b in blocks.items())}")
            if resolved.unchecked:
                print(f"# not implemented yet, their blocks unchecked: {', '.join(resolved.unchecked)}")
            return 0
        systems = {name: find(block.system_type) for name, block in blocks.items()}
        for name, system in systems.items():
            if hasattr(system, "check"):
                system.check(blocks[name])
        run_dir = find_resume_dir(cfg)
        if args.export:
            return export(cfg, run_dir, args.stage, stage_names(cfg))
        # DDP re-runs this script once per extra process: those find the run directory in the environment
        run_dir = run_dir or Path(os.environ.get(RUN_DIR_ENV) or make_run_dir(cfg))
    except (ConfigError, RegistryError, PromptError, TeacherNotFound, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run directory: {run_dir}")
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        for name, system in systems.items():
            system.run(blocks[name], run_dir / name, cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with  python launch.py --config {args.config} resume={run_dir}", file=sys.stderr)
        return 130
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
