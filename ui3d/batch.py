"""Batch prompts: `python launch.py --config NAME --prompts FILE [key=value ...]` (or `prompt=@FILE`).

Each prompt of the file (one a line; blank lines and `#` comments skipped) is one ordinary run, as
`prompt="..."` alone would make it: its own `<exp_root_dir>/<name>/<tag>@<timestamp>/`, so `resume=LAST` with
that prompt finds it later. Every prompt is checked before the first run starts (its words, its run directory's
name): one bad prompt stops the batch with exit 2 and nothing written. A rerun of the batch skips prompts whose
run finished every stage and resumes unfinished ones (the newest run of the prompt whose `config.yaml` trains
what this batch trains, `ui3d.run.find_same_run`). A prompt that fails while training does not stop the others;
the batch ends with a table (prompt, status, time, GLB, run) and exits 1 if any prompt failed.
"""
from __future__ import annotations

import argparse
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

PROMPT_KEYS = ("prompt", "system.prompt_processor.prompt")
"""The override keys that set the prompt (`prompt=@FILE` is the batch form)."""


@dataclass
class Prompt:
    line: int
    """Line number in its file (1-based)."""
    text: str


@dataclass
class Row:
    """One prompt's part of the batch: what was planned, then what happened."""

    prompt: Prompt
    run_dir: Path | None = None
    """The run it continues (None: a new run), then the run it wrote."""
    status: str = "new"
    """Planned: `new`, `resume`, `skipped (already done)`; after running: `done`, `failed`, `not run`."""
    seconds: float | None = None
    glb: Path | None = None
    error: str = ""


def read_prompts(path: str | Path) -> list[Prompt]:
    """The prompts of a file with their line numbers, one per line; blank lines and `#` comments skipped."""
    from ui3d.config import ConfigError

    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the prompt file {path} ({getattr(err, 'strerror', None) or err}): give a "
                          "text file with one prompt per line") from None
    prompts = [Prompt(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)]
    prompts = [p for p in prompts if p.text and not p.text.startswith("#")]
    if not prompts:
        raise ConfigError(f"the prompt file {path} holds no prompt (blank lines and # comments are skipped)")
    return prompts


def prompt_file(args: argparse.Namespace) -> str | None:
    """The prompt file of a batch (`--prompts FILE` or `prompt=@FILE`), or None for a single run."""
    from ui3d.config import ConfigError

    files = [o.partition("=")[2][1:] for o in args.overrides
             if o.partition("=")[0] in PROMPT_KEYS and o.partition("=")[2].startswith("@")]
    if args.prompts is not None:
        files.insert(0, args.prompts)
    singles = [o for o in args.overrides if o.partition("=")[0] in PROMPT_KEYS and not o.partition("=")[2].startswith("@")]
    if files and singles:
        raise ConfigError(f"give either a prompt file (--prompts FILE or prompt=@FILE) or {singles[0]!r}, not both")
    if len(files) > 1:
        raise ConfigError(f"give one prompt file, not {' and '.join(files)}")
    if files and not files[0]:
        raise ConfigError("prompt=@ names no file: give prompt=@prompts/embedded.txt or --prompts FILE")
    return files[0] if files else None


def _argv(args: argparse.Namespace, overrides: list[str], row: Row) -> list[str]:
    """launch.py's arguments for one prompt of the batch."""
    flags = [*(["--stage", args.stage] if args.stage else []), *(["--gpu", args.gpu] if args.gpu else []),
             *(["--verbose"] if args.verbose else [])]
    resume = [f"resume={row.run_dir}"] if row.run_dir is not None else []
    return ["--config", args.config, *flags, *overrides, f"prompt={row.prompt.text}", *resume]


SENTINEL = "ui3d-batch-prompt"
"""A stand-in prompt: the config is read and checked once with it, and each prompt replaces it."""


def configs(config: str, overrides: list[str], prompts: list[Prompt]):
    """(prompt, resolved config) for each prompt, as `load_config(config, [*overrides, "prompt=..."])` gives it;
    the file is read and checked once unless the prompt is interpolated into other keys."""
    from omegaconf import OmegaConf

    from ui3d.config import SHORTHANDS, load_config
    from ui3d.run import flat

    base = load_config(config, [*overrides, f"prompt={SENTINEL}"]).cfg
    uses = [key for key, value in flat(base).items() if SENTINEL in str(value)]
    for prompt in prompts:
        if uses != [SHORTHANDS["prompt"]]:
            yield prompt, load_config(config, [*overrides, f"prompt={prompt.text}"]).cfg
        else:
            yield prompt, OmegaConf.merge(base, OmegaConf.from_dotlist([f"{SHORTHANDS['prompt']}={prompt.text}"]))


def check_prompt(cfg, stages: list[str]) -> None:
    """launch.py's checks of one prompt's run before anything is written (words, teacher, run directory name);
    a fault of the config itself raises on the first prompt."""
    from ui3d.config import ConfigError, stage_block
    from ui3d.registry import find
    from ui3d.run import run_dir_for
    from ui3d.teachers.teacher import PromptError

    blocks = [stage_block(cfg, name) for name in stages]
    if any(b.trainer.devices * b.trainer.num_nodes > 1 for b in blocks):
        raise ConfigError("a prompt file runs its prompts one after another in this process; several DDP "
                          "processes (trainer.devices, --gpu 0,1) need one launch.py per prompt")
    for block in blocks:
        system = find(block.system_type)
        if hasattr(system, "check"):
            system.check(block)
    try:
        run_dir_for(cfg)
    except ConfigError as err:
        if cfg.tag:  # the tag, not the prompt, names the directory
            raise
        raise PromptError(str(err)) from None


def plan(args: argparse.Namespace, overrides: list[str], source: str, prompts: list[Prompt]) -> list[Row]:
    """Check every prompt as launch.py checks one and find the run each continues. A prompt's own faults (words
    the teacher does not know, a name too long for a directory) are gathered and raised together, one line each
    naming the file and line."""
    from ui3d.cli import gpu_overrides
    from ui3d.config import ConfigError, parse_overrides, stage_names
    from ui3d.run import find_same_run
    from ui3d.teachers.teacher import PromptError

    if args.config is None:
        raise ConfigError("a prompt file needs --config NAME (e.g. --config uniinstruct-fkl.yaml --prompts FILE)")
    if args.export or args.validate or args.test:
        raise ConfigError("a prompt file trains one run per prompt: --export, --validate and --test take one run "
                          "(resume=RUN)")
    if "resume" in parse_overrides(overrides):
        raise ConfigError("a prompt file resumes each prompt's run by itself: drop resume=")
    overrides = overrides + (gpu_overrides(args.gpu, args.dry_run) if args.gpu else [])
    rows, hint = [], ""
    bad = [(p.line, "the prompt is empty: say what to make") for p in prompts if not p.text]
    for prompt, cfg in configs(args.config, overrides, [p for p in prompts if p.text]):
        stages = [args.stage] if args.stage else stage_names(cfg)
        try:
            check_prompt(cfg, stages)
        except PromptError as err:
            first, _, rest = str(err).partition("\n")
            bad.append((prompt.line, f"{prompt.text!r}: {first}"))
            hint = hint or rest
            continue
        row = Row(prompt, find_same_run(cfg))
        if row.run_dir is not None:
            done = all((row.run_dir / name / "done").is_file() for name in stages)
            row.status = "skipped (already done)" if done else "resume"
        rows.append(row)
    if bad:
        lines = [f"{source}:{line}: {what}" for line, what in sorted(bad)]
        raise ConfigError("\nerror: ".join(lines) + (f"\n{hint}" if hint else ""))
    return rows


def table(rows: list[Row], dry_run: bool = False) -> str:
    """The batch's summary: one line per prompt (its file line, prompt, status, time, GLB, run directory)."""
    def cells(row: Row) -> list[str]:
        seconds = "-" if row.seconds is None else f"{row.seconds:.1f} s"
        run = "(new)" if row.run_dir is None else str(row.run_dir)
        return [str(row.prompt.line), row.prompt.text, row.status, seconds, str(row.glb or "-"), run]

    header = ["line", "prompt", "status" if not dry_run else "plan", "time", "GLB", "run"]
    body = [cells(row) for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in [header, *body]]
    failed = [f"line {row.prompt.line}: {row.error}" for row in rows if row.status == "failed"]
    return "\n".join(["", *lines, *(["", "failed:", *failed] if failed else [])])


def _free_memory() -> None:
    """What a failed prompt left on the GPU (an out-of-memory error keeps its tensors until collected)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_one(args: argparse.Namespace, overrides: list[str], row: Row, launch) -> int:
    """Train one prompt through `launch` (launch.py's `main`); fills in the row. Returns launch.py's status (1 for
    an exception, whose traceback is printed: the batch goes on)."""
    from ui3d import cli
    from ui3d.api import RunResult

    start = time.time()
    try:
        code = launch(_argv(args, overrides, row))
    except KeyboardInterrupt:  # outside a stage's training (which launch.py turns into 130 itself)
        code = 130
    except Exception as err:  # noqa: BLE001  (a prompt that fails while training: say why, go on with the next)
        traceback.print_exc()
        code, cli.last.error = 1, f"{type(err).__name__}: {err}".splitlines()[0]
        _free_memory()
    row.seconds = time.time() - start
    row.run_dir = cli.last.run_dir or row.run_dir
    if code == 0:
        row.status, row.glb = "done", RunResult.read(row.run_dir).glb
    elif code in (130, 143):
        row.status = "interrupted"
    else:
        row.status, row.error = "failed", cli.last.error or f"launch.py exited with {code}"
    return code


def main(args: argparse.Namespace, source: str, prompts: list[Prompt] | None = None) -> int:
    """Run a prompt file, or `prompts` given in Python (see the module's docstring). Exit status: 0, 1 if a prompt
    failed, 2 for bad input (no prompt run), 130 / 143 when Ctrl-C / SIGTERM stopped it (the table says which
    prompts ran)."""
    from ui3d import cli

    overrides = [o for o in args.overrides if o.partition("=")[0] not in PROMPT_KEYS]
    try:
        rows = plan(args, overrides, source, read_prompts(source) if prompts is None else prompts)
    except cli.bad_input() as err:
        return cli.refuse(err)
    if args.dry_run:
        print(table(rows, dry_run=True))
        return 0
    code = 0
    for i, row in enumerate(rows, 1):
        print(f"\n[{i}/{len(rows)}] {row.prompt.text!r} ({source}:{row.prompt.line}): {row.status}", flush=True)
        if row.status.startswith("skipped"):
            continue
        code = run_one(args, overrides, row, cli.main)
        if code in (130, 143):
            for later in rows[i:]:
                later.status = "not run"
            break
    print(table(rows))
    cli.last.batch = rows
    return code if code in (130, 143) else int(any(row.status == "failed" for row in rows))
