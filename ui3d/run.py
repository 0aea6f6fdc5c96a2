"""Run directories: `<exp_root_dir>/<name>/<tag>@<timestamp>/` holding the resolved config."""
from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ui3d.config import ConfigError, run_tag


def run_dir_for(cfg: DictConfig, timestamp: str | None = None) -> Path:
    """Where this run writes (nothing is created)."""
    tag = run_tag(cfg)
    if cfg.use_timestamp:
        tag = f"{tag}@{timestamp or time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.exp_root_dir) / str(cfg.name) / tag


def make_run_dir(cfg: DictConfig) -> Path:
    """Create the run directory and save the resolved config in it as `config.yaml`."""
    run_dir = run_dir_for(cfg)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # exp_root_dir (or a folder on the way) is a file, read-only, ...
        raise ConfigError(f"cannot create the run directory {run_dir}: {err.strerror} ({err.filename}); "
                          "set exp_root_dir=<a writable folder>") from err
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    return run_dir


def find_resume_dir(cfg: DictConfig) -> Path | None:
    """The run directory `resume` names: `LAST` (newest run of this name and tag) or a path; None for a new run."""
    if not cfg.resume:
        return None
    if str(cfg.resume) == "LAST":
        family = Path(cfg.exp_root_dir) / str(cfg.name)
        runs = [p for p in family.glob(f"{run_tag(cfg)}@*") if p.is_dir()]
        runs += [family / run_tag(cfg)] if (family / run_tag(cfg)).is_dir() else []
        if not runs:
            raise FileNotFoundError(f"resume=LAST: no earlier run of {family}/{run_tag(cfg)}@* to resume")
        return max(runs, key=lambda p: p.stat().st_mtime)
    path = Path(str(cfg.resume))
    path = path.parent.parent.parent if path.suffix == ".ckpt" else path  # <run>/<stage>/ckpts/last.ckpt
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"resume={cfg.resume}: {path} is not a run directory (it has no config.yaml)")
    return path
