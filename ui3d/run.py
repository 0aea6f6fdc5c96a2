"""Run directories: `<exp_root_dir>/<name>/<tag>@<timestamp>/` holding the resolved config."""
from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ui3d.config import run_tag


def run_dir_for(cfg: DictConfig, timestamp: str | None = None) -> Path:
    """Where this run writes (nothing is created)."""
    tag = run_tag(cfg)
    if cfg.use_timestamp:
        tag = f"{tag}@{timestamp or time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.exp_root_dir) / str(cfg.name) / tag


def make_run_dir(cfg: DictConfig) -> Path:
    """Create the run directory and save the resolved config in it as `config.yaml`."""
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    return run_dir
