"""Run directories: `<exp_root_dir>/<name>/<tag>@<timestamp>/` holding the resolved config.

A new run gets a directory of its own (created exclusively: two runs started in the same second get `…@T` and
`…@T-1`). A resumed run reads the `config.yaml` saved in its directory, so `resume=RUN` alone continues the run as
it was; overrides on top of it may change how long and how it is stepped and logged (`RESUMABLE`), never what it
trains. Accepted changes are saved into `config.yaml` and listed in `resumes.log`.
"""
from __future__ import annotations

import fnmatch
import time
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ui3d import files
from ui3d.config import ConfigError, load_config, run_tag

NAME_MAX = 255
"""Longest file name (bytes) on common file systems (ext4, APFS, NTFS)."""

RESUMABLE = ("steps", "resume", "exp_root_dir", "name", "tag", "use_timestamp", "description", "trainer.*",
             "stages.*.trainer.*", "system.export", "system.export.*", "system.export_mesh",
             "stages.*.system.export", "stages.*.system.export.*", "stages.*.system.export_mesh")
"""Keys a resume may change (dotted, `*` for any one part or rest): run length, stepping, logging, exports. Every
other key (prompt, seed, guidance, geometry, teacher, data, losses, …) defines what the run trains."""


def run_dir_for(cfg: DictConfig, timestamp: str | None = None) -> Path:
    """Where this run writes (nothing is created); a name too long for the file system is refused."""
    tag = run_tag(cfg)
    if cfg.use_timestamp:
        tag = f"{tag}@{timestamp or time.strftime('%Y%m%d-%H%M%S')}"
    for part, key in ((str(cfg.name), "name"), (tag, "tag")):
        if len(part.encode()) + 4 > NAME_MAX:  # room for a `-N` suffix
            raise ConfigError(f"the run directory name would be {len(part.encode())} bytes ({part[:40]}…), over the "
                              f"file-name limit of {NAME_MAX}: give the run a short {key}=, e.g. {key}=my_run")
    return Path(cfg.exp_root_dir) / str(cfg.name) / tag


def make_run_dir(cfg: DictConfig) -> Path:
    """Create a new run directory (exclusively: never one another run holds) and save the resolved config in it
    as `config.yaml`."""
    base = run_dir_for(cfg)
    for n in range(1000):
        run_dir = base if n == 0 else base.with_name(f"{base.name}-{n}")
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
        except FileExistsError:
            if not cfg.use_timestamp and n == 0:
                raise ConfigError(f"the run directory {run_dir} exists: continue it with resume={run_dir}, or give "
                                  "this run another tag= (or use_timestamp=true)") from None
            continue
        except OSError as err:  # exp_root_dir (or a folder on the way) is a file, read-only, ...
            raise ConfigError(f"cannot create the run directory {run_dir}: {err.strerror} ({err.filename}); "
                              "set exp_root_dir=<a writable folder>") from err
        files.write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        return run_dir
    raise ConfigError(f"cannot find a free run directory beside {base}: give the run another tag=")


def has_progress(run_dir: Path) -> bool:
    """Whether a run directory holds anything to resume: a stage checkpoint or a finished stage."""
    return any(run_dir.glob("*/ckpts/*.ckpt")) or any(run_dir.glob("*/done"))


def runs_of(cfg: DictConfig) -> list[Path]:
    """The run directories of this config's name and tag (`<tag>@<timestamp>`, and `<tag>` without a timestamp)."""
    family = Path(cfg.exp_root_dir) / str(cfg.name)
    runs = [p for p in family.glob(f"{run_tag(cfg)}@*") if p.is_dir()]
    return runs + ([family / run_tag(cfg)] if (family / run_tag(cfg)).is_dir() else [])


def find_same_run(cfg: DictConfig) -> Path | None:
    """The newest run of this name and tag that has something to resume and trains what `cfg` trains (its
    `config.yaml` differs at most in `RESUMABLE` keys): the run a batch prompt continues; None if there is none."""
    same = []
    for run in (p for p in runs_of(cfg) if has_progress(p)):
        try:  # written resolved and checked by make_run_dir: compared as it is (load_config would check it again)
            saved = OmegaConf.load(run / "config.yaml")
        except (OSError, OmegaConfBaseException, yaml.YAMLError):  # unreadable: not this run
            continue
        if all(resumable(key) for key in changed_keys(saved, cfg)):
            same.append(run)
    return max(same, key=lambda p: p.stat().st_mtime, default=None)


def find_resume_dir(cfg: DictConfig | None, resume: str | None = None) -> Path | None:
    """The run directory `resume` names: `LAST` (the newest run of this name and tag that has a checkpoint) or a
    path (a run directory or one of its checkpoints); None for a new run."""
    resume = resume if resume is not None else (cfg.resume if cfg is not None else None)
    if not resume:
        return None
    if str(resume) == "LAST":
        if cfg is None:
            raise ConfigError("resume=LAST needs --config (it looks for the newest run of the config's name and tag)")
        runs = runs_of(cfg)
        resumable = [p for p in runs if has_progress(p)]
        if not resumable:
            found = f" ({len(runs)} without a checkpoint)" if runs else ""
            raise FileNotFoundError(f"resume=LAST: no earlier run of {Path(cfg.exp_root_dir) / str(cfg.name)}/"
                                    f"{run_tag(cfg)}@* with a checkpoint to resume{found}; start a new run without "
                                    "resume=")
        return max(resumable, key=lambda p: p.stat().st_mtime)
    path = Path(str(resume)).expanduser()
    path = path.parent.parent.parent if path.suffix == ".ckpt" else path  # <run>/<stage>/ckpts/last.ckpt
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"resume={resume}: {path} is not a run directory (it has no config.yaml)")
    return path


def flat(cfg: DictConfig) -> dict[str, object]:
    """`{dotted key: value}` of every leaf, interpolations resolved."""
    out: dict[str, object] = {}

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def changed_keys(before: DictConfig, after: DictConfig) -> dict[str, tuple]:
    """`{dotted key: (before, after)}` for every leaf that differs."""
    a, b = flat(before), flat(after)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def resumable(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUMABLE)


def resume_config(run_dir: Path, overrides: list[str], file_cfg: DictConfig | None = None,
                  save: bool = True) -> DictConfig:
    """The config a resumed run continues with: the run's own `config.yaml`, plus the command line's overrides
    when they only change `RESUMABLE` keys (saved and logged); an override that would change what the run trains
    is refused naming it. `file_cfg` (the --config file with the overrides) is only compared, for a note.
    `save=False` (a dry run) writes nothing."""
    saved_path = run_dir / "config.yaml"
    overrides = [o for o in overrides if not o.startswith("resume=")]
    try:
        saved = load_config(str(saved_path)).cfg
    except ConfigError as err:
        raise ConfigError(f"resume={run_dir}: its config.yaml cannot be used ({str(err).splitlines()[0]})") from None
    cfg = load_config(str(saved_path), overrides).cfg
    changes = {k: v for k, v in changed_keys(saved, cfg).items() if k != "resume"}
    refused = {k: v for k, v in changes.items() if not resumable(k)}
    if refused:
        listing = "; ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in refused.items())
        raise ConfigError(f"resume={run_dir} would change what the run trains ({listing}): a resumed run keeps its "
                          "config.yaml; start a new run for these (drop resume=), or change only steps, trainer.* "
                          "and export keys")
    if file_cfg is not None:
        differs = [k for k in changed_keys(file_cfg, cfg) if not resumable(k)]
        if differs:
            print(f"note: continuing with {saved_path}; the --config file differs in {', '.join(differs[:6])}"
                  + (" …" if len(differs) > 6 else "") + " (ignored on resume)")
    if changes and save:
        cfg.resume = None
        files.write_text(saved_path, OmegaConf.to_yaml(cfg, resolve=True))
        log = run_dir / "resumes.log"
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} " + ", ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in changes.items())
        files.write_text(log, (log.read_text() if log.is_file() else "") + line + "\n")
        print(f"resume: {line.split(' ', 2)[2]} (saved in {saved_path})")
    cfg.resume = str(run_dir)
    return cfg
