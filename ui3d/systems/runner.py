"""One stage of a run under Lightning: seed, build, fit with checkpoints (resumed when present), test, mark done."""
from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

import torch

from ui3d.config import ConfigError, TrainerConfig, build, parse_structured, stage_block


def loggers(stage_dir: Path) -> list:
    """CSV always; TensorBoard too where it is installed."""
    found = [CSVLogger(stage_dir, name="logs", version="")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        found.append(TensorBoardLogger(stage_dir, name="tb", version=""))
    except (ImportError, ModuleNotFoundError):
        pass
    return found


def make_trainer(cfg: TrainerConfig, stage_dir: Path) -> L.Trainer:
    ckpt_dir = stage_dir / "ckpts"
    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="latest", every_n_train_steps=cfg.checkpoint_every, save_last=True),
        # Ctrl-C or a crash keeps the current state (Lightning deletes this file again after a clean fit)
        OnExceptionCheckpoint(dirpath=ckpt_dir, filename="interrupted"),
    ]
    return L.Trainer(
        max_steps=cfg.max_steps, val_check_interval=cfg.val_check_interval, check_val_every_n_epoch=None,
        log_every_n_steps=cfg.log_every_n_steps, accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy, precision=cfg.precision, callbacks=callbacks, logger=loggers(stage_dir),
        default_root_dir=stage_dir, num_sanity_val_steps=0, enable_model_summary=False,
    )


def teacher_name(system_cfg) -> str:
    """The one teacher of a system: guidance and prompt processor must agree on it."""
    guidance = system_cfg.guidance.get("pretrained_model_name_or_path", "embedded")
    prompts = system_cfg.prompt_processor.get("pretrained_model_name_or_path", "embedded")
    if guidance != prompts:
        raise ConfigError(
            f"guidance uses teacher '{guidance}' but prompt_processor uses '{prompts}': set both "
            "pretrained_model_name_or_path to the same model"
        )
    return guidance


def resume_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest of `interrupted.ckpt` (written on Ctrl-C or a crash) and `last.ckpt`, if any."""
    found = [p for p in (ckpt_dir / "interrupted.ckpt", ckpt_dir / "last.ckpt") if p.is_file()]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


def previous_geometry(experiment: DictConfig, name: str, run_dir: Path):
    """The geometry of an earlier stage, rebuilt from the run's config and its last checkpoint (the handoff)."""
    ckpt = run_dir / name / "ckpts" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(f"this stage converts from stage '{name}', which has no checkpoint {ckpt}: run it first "
                          f"(--stage {name}) or run all stages")
    block = stage_block(experiment, name).system
    geometry = build(block.geometry_type, block.geometry)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    geometry.load_state_dict({k[len("geometry."):]: v for k, v in state.items() if k.startswith("geometry.")})
    return geometry


def previous_guidance_state(name: str, run_dir: Path) -> dict:
    """The guidance state saved in an earlier stage's last checkpoint (`guidance_from`)."""
    ckpt = run_dir / name / "ckpts" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(f"this stage takes its guidance from stage '{name}', which has no checkpoint {ckpt}: run "
                          f"it first (--stage {name}) or run all stages")
    state = torch.load(ckpt, map_location="cpu", weights_only=True).get("guidance_state")
    if state is None:
        raise ConfigError(f"{ckpt} holds no guidance state (written before guidance states were saved by name); "
                          f"rerun stage '{name}' or remove guidance_from")
    return state


def fit_stage(system: L.LightningModule, stage_dir: Path, trainer_cfg: TrainerConfig, datamodule=None) -> None:
    """Fit `system` in `stage_dir` (resuming the newest checkpoint there), test it, write `done` (rank 0)."""
    trainer = make_trainer(trainer_cfg, stage_dir)
    last = stage_dir / "ckpts" / "last.ckpt"
    start = time.time()
    trainer.fit(system, datamodule=datamodule, ckpt_path=resume_checkpoint(stage_dir / "ckpts"))
    if trainer.interrupted:
        raise KeyboardInterrupt(f"interrupted; rerun with resume={stage_dir.parent} to continue from {last}")
    trainer.save_checkpoint(last)
    trainer.test(system, datamodule=datamodule, verbose=False)
    if trainer.is_global_zero:
        (stage_dir / "done").write_text(f"{trainer.global_step} steps, {time.time() - start:.1f} s\n")


def stage_done(stage_dir: Path) -> bool:
    """True (and says so) when the stage finished in an earlier run of this directory."""
    if (stage_dir / "done").is_file():
        print(f"{stage_dir.name}: already done, skipped (delete {stage_dir / 'done'} to run it again)")
        return True
    return False


def train_stage(system_cls, stage: DictConfig, stage_dir: Path, experiment: DictConfig, load_teacher) -> None:
    """Fit one stage in `stage_dir` (resuming `ckpts/last.ckpt`), render its test turntable, write `done`."""
    stage_dir = Path(stage_dir)
    if stage_done(stage_dir):
        return
    L.seed_everything(int(experiment.seed), workers=True, verbose=False)
    trainer_cfg = parse_structured(TrainerConfig, stage.trainer)
    system_cfg = parse_structured(system_cls.Config, stage.system)
    system = system_cls(system_cfg, load_teacher(teacher_name(system_cfg)), stage_dir / "save")
    fresh = resume_checkpoint(stage_dir / "ckpts") is None
    if stage.get("convert_from") and fresh:
        system.geometry.initialize_from(previous_geometry(experiment, stage.convert_from, stage_dir.parent))
    if stage.get("guidance_from") and fresh:
        system.guidance.load_state_dict(previous_guidance_state(stage.guidance_from, stage_dir.parent))
    fit_stage(system, stage_dir, trainer_cfg, build(stage.data_type, stage.data, trainer_cfg.max_steps))
