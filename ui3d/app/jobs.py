"""Runs started from the browser: checked in this process first, then trained by a `python launch.py` child.

The check is `launch.py --dry-run` called in-process (`ui3d.cli.main`): the same checks as a real start (config
keys, the prompt's words against the teacher's vocabulary, the teacher folder, the run directory's name), nothing
written, the error line back for the browser. The child runs in its own process group, one at a time; its output
is read for the run directory it prints and its progress bars (`nerf: 37%| 222/600 [...]`). Cancelling sends
SIGTERM: launch.py stops after the current step, writes a checkpoint and exits 143, and the run stays resumable.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ui3d.app.runs import inside, stage_plan
from ui3d.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch.py"
BAR = re.compile(r"^([\w.-]+):\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")
"""A stage's training bar (`ui3d.systems.runner.StageProgressBar`); its validation and turntable bars say more
after the stage name and do not match."""
BAR_PREFIX = re.compile(r"^(.+?):\s+\d+%\|")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
"""tqdm's cursor moves between nested bars."""
RUN_DIRECTORY = "run directory: "
"""What launch.py prints once it made (or found, on resume) the run directory."""
_check_lock = threading.Lock()


class Refused(ValueError):
    """Input the app will not start a run with; the message says what was wrong and what to give instead."""


def configs() -> list[str]:
    """The config files a run may start from, as `--config` takes them (relative to `configs/`)."""
    return sorted(p.relative_to(CONFIG_DIR).as_posix() for p in CONFIG_DIR.rglob("*.yaml"))


def launch_args(config: str, prompt: str, overrides: str, outputs: Path) -> list[str]:
    """launch.py's arguments for a run of `config` on `prompt` with `key=value` overrides (shell-quoted, any
    whitespace between them), written under `outputs`."""
    if config not in configs():
        raise Refused(f"unknown config '{config}': pick one of {', '.join(configs())}")
    try:
        pairs = shlex.split(overrides or "")
    except ValueError as err:
        raise Refused(f"overrides: {err} (quote values with spaces, e.g. tag=\"my run\")") from None
    for pair in pairs:
        key = pair.split("=", 1)[0]
        if "=" not in pair or pair.startswith("-"):
            raise Refused(f"override '{pair}' is not key=value (e.g. steps=100 seed=1)")
        if key == "exp_root_dir":
            raise Refused(f"exp_root_dir: the app writes its runs into its outputs folder {outputs}; drop it")
    prompt = " ".join(str(prompt or "").split())
    return ["--config", config, *([f"prompt={prompt}"] if prompt else []), *pairs, f"exp_root_dir={outputs}"]


def check(args: list[str], outputs: Path) -> Path:
    """launch.py's own checks of `args` (a dry run: nothing written); the run directory it would use, which must
    lie in `outputs`. `Refused` carries launch.py's error line."""
    from ui3d import cli

    out, err = io.StringIO(), io.StringIO()
    with _check_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([*args, "--dry-run"])
    if code != 0:
        lines = [line.removeprefix("error: ") for line in err.getvalue().splitlines() if line.strip()]
        raise Refused(cli.last.error or (lines[-1] if lines else f"launch.py exited with {code}"))
    found = [line.split(RUN_DIRECTORY, 1)[1] for line in out.getvalue().splitlines() if RUN_DIRECTORY in line]
    run_dir = Path(found[-1].strip()) if found else None
    if run_dir is None or not inside(outputs, run_dir):
        raise Refused(f"the run would be written to {run_dir}, outside the outputs folder {outputs}: drop the "
                      "name=/tag=/resume= that leads there")
    return run_dir


@dataclass
class Job:
    """A child process: its output (progress bars collapsed to their latest state), run directory, bars."""

    argv: list[str]
    process: subprocess.Popen
    lines: deque = field(default_factory=lambda: deque(maxlen=300))
    run_dir: Path | None = None
    bars: dict[str, tuple[int, int]] = field(default_factory=dict)
    """stage → (step, max steps) from its training bar."""
    cancelled: bool = False

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def code(self) -> int | None:
        return self.process.poll()

    def add(self, line: str) -> None:
        line = ANSI.sub("", line).rstrip()
        if not line:
            return
        if line.startswith(RUN_DIRECTORY) and self.run_dir is None:
            self.run_dir = Path(line[len(RUN_DIRECTORY):].strip())
        bar = BAR.match(line)
        if bar:
            self.bars[bar.group(1)] = (int(bar.group(2)), int(bar.group(3)))
        this, last = BAR_PREFIX.match(line), BAR_PREFIX.match(self.lines[-1]) if self.lines else None
        if this and last and this.group(1) == last.group(1):
            self.lines[-1] = line  # the same bar, moved on
        else:
            self.lines.append(line)

    def read(self) -> None:
        """Read the child's output to its end (a thread of its own): lines end at \\n or tqdm's \\r."""
        pending = b""
        for chunk in iter(lambda: self.process.stdout.read1(4096), b""):
            *done, pending = re.split(rb"[\r\n]", pending + chunk)
            for line in done:
                self.add(line.decode(errors="replace"))
        self.add(pending.decode(errors="replace"))

    def progress(self) -> str:
        """`nerf done · geometry 37/400 · texture 0/200`: each stage of the run's config, finished or at the step
        of its bar; `starting` until the run directory is known."""
        if self.run_dir is None or not (self.run_dir / "config.yaml").is_file():
            return "starting"
        parts = []
        for stage, total in stage_plan(self.run_dir).items():
            step, total = self.bars.get(stage, (0, total))
            parts.append(f"{stage} done" if (self.run_dir / stage / "done").is_file() else f"{stage} {step}/{total}")
        return " · ".join(parts)

    def log(self, n: int = 40) -> str:
        return "\n".join(list(self.lines)[-n:])

    def error(self) -> str:
        """launch.py's `error:` line, else the last line it wrote."""
        errors = [line for line in self.lines if line.startswith("error: ")]
        return (errors[-1] if errors else (self.lines[-1] if self.lines else "")).removeprefix("error: ")


def warm_up() -> None:
    """Import what `check` needs (Lightning, the registered parts: many seconds) ahead of the first start."""
    from ui3d import cli  # noqa: F401
    from ui3d.registry import names

    names()


class Jobs:
    """One child at a time (`start` refuses a second while one runs); `cancel` stops the current one."""

    def __init__(self):
        self.current: Job | None = None
        self._lock = threading.Lock()

    def start(self, argv: list[str]) -> Job:
        """Start `python ARGV` (launch.py's path, or `-m module ...`) in this process's working directory."""
        with self._lock:
            if self.current is not None and self.current.running:
                raise Refused("a job is running already: wait for it or cancel it first")
            env = {**os.environ, "PYTHONUNBUFFERED": "1",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            self.current = Job(argv, process)
            self.current.lines.append("$ python " + " ".join(shlex.quote(a) for a in argv))
            threading.Thread(target=self.current.read, daemon=True).start()
            return self.current

    def cancel(self) -> str:
        """SIGTERM to the current child's process group (every DDP rank): it stops after the current step,
        keeping a checkpoint to resume from."""
        with self._lock:
            job = self.current
            if job is None or not job.running:
                return "nothing is running"
            job.cancelled = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.process.pid, signal.SIGTERM)
            return "cancelling: the run stops after its current step and keeps a checkpoint"
