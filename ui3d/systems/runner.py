"""One stage of a run under Lightning: seed, build, fit with checkpoints (resumed when present), test, mark done.

Fault handling lives here. Checkpoints are written atomically and read with `weights_only=True`
(`AtomicCheckpointIO`); a resume takes the newest readable checkpoint of the stage and says which unreadable one it
skipped; a checkpoint written on an exception never replaces progress with an earlier state (`ProgressCheckpoint`);
the random states travel in every checkpoint (`RandomStates`), so a resumed run draws what an uninterrupted one
would; `metrics.csv` is appended to (`AppendingCSVLogger`). Ctrl-C and SIGTERM stop at a step boundary with a
checkpoint and raise `KeyboardInterrupt` / `Terminated`, which launch.py turns into exit 130 / 143 and a resume hint.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, OnExceptionCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

import torch
import torch.distributed as dist

from ui3d import files
from ui3d.config import ConfigError, TrainerConfig, build, parse_structured, stage_block
from ui3d.training import mix_seed

CHECKPOINT_NAMES = ("interrupted.ckpt", "last.ckpt", "latest.ckpt")
"""What a stage's `ckpts/` may hold: written on an exception / at the end and every `checkpoint_every` steps /
every `checkpoint_every` steps by ModelCheckpoint."""


class Terminated(Exception):
    """SIGTERM reached a stage: its checkpoint is written, the stage is not done (launch.py exits 143)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic writes (temporary file, fsync, rename: the previous checkpoint survives
    until the new one is complete) and safe reads (`weights_only=True`, a clear error naming a bad file)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        files.torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return files.torch_load(path, "checkpoint")


class ProgressCheckpoint(OnExceptionCheckpoint):
    """`interrupted.ckpt` on Ctrl-C, SIGTERM or a crash, but only once training has gone past the step it started
    from: a failure while loading or before the first step never writes an earlier state over real progress."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_step: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = trainer.global_step

    def on_exception(self, trainer, *args, **kwargs) -> None:
        if self.start_step is not None and trainer.global_step > self.start_step:
            super().on_exception(trainer, *args, **kwargs)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached": float(cached), "kind": str(kind)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class RandomStates(Callback):
    """The global random states (torch, CUDA, numpy, Python) as training left them after each step, saved in every
    checkpoint and put back before every step: whatever runs between steps (validation, checkpointing, a resume)
    does not shift what training draws, so a resumed run continues the random stream of an uninterrupted one."""

    def __init__(self):
        self.state: dict | None = None
        # the run's seed, read once: seed_everything below rewrites PL_GLOBAL_SEED, and a seed read back from it at
        # every step would chain through the steps run so far (a resumed run would draw another stream)
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.world_size > 1:  # DDP: each rank draws its own noise, a function of seed, step and rank
            L.seed_everything((mix_seed(self.seed, trainer.global_step) * 1009 + trainer.global_rank) % 2**32,
                              verbose=False)
        elif self.state is not None:
            _set_rng_state(self.state)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.state = _rng_state()

    def state_dict(self) -> dict:
        return {"rng": self.state} if self.state is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self.state = state_dict.get("rng")


class FinalCheckpoint(Callback):
    """`last.ckpt` right after the last training step, with the loops' state of a step boundary (as every periodic
    checkpoint has): a run resumed with more steps continues exactly as a longer run would, logged steps included."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.save_checkpoint(self.path, weights_only=False)


class GracefulStop(Callback):
    """During a fit, Ctrl-C or SIGTERM asks training to stop at the next step boundary (a second signal stops at
    once): the interrupt then leaves the state of a whole step, which `ProgressCheckpoint` saves, and a resumed run
    continues exactly. Lightning adds its SIGTERM notifier to this handler when a fit starts; whichever stops
    first (its `SIGTERMException` at the end of a step, or this callback before the next one or inside
    validation) leaves a consistent checkpoint."""

    MESSAGES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self):
        self.requested: int | None = None

    def _handler(self, signum, frame) -> None:
        if self.requested is not None:
            self._raise(signum)
        self.requested = signum
        print(f"\n{self.MESSAGES[signum]}: stopping after this step (again to stop now)", file=sys.stderr)

    @staticmethod
    def _raise(signum: int) -> None:
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated("terminated")

    @contextlib.contextmanager
    def installed(self):
        previous = {s: signal.signal(s, self._handler) for s in self.MESSAGES}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _check(self, *args, **kwargs) -> None:
        if self.requested is not None:
            self._raise(self.requested)

    on_validation_batch_start = on_test_batch_start = _check

    def on_train_batch_start(self, *args, **kwargs) -> None:
        self.between_steps = True
        self._check()
        self.between_steps = False

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Lightning adds 1 to the logging step of a checkpoint it restarts from, as its own checkpoints are written
        # before that step count moves on; one written between steps is past it already
        if getattr(self, "between_steps", False):
            loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
            if "_batches_that_stepped" in loop:
                loop["_batches_that_stepped"] -= 1


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing `metrics.csv`; this one keeps its rows and its header."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])


class AppendingCSVLogger(CSVLogger):
    """`logs/metrics.csv`, appended to across resumes (`keep_until` drops rows a resumed step will log again)."""

    @property
    def experiment(self):
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    @staticmethod
    def keep_until(metrics: Path, step: int) -> None:
        """Drop the rows of steps ≥ `step` (logged after the checkpoint a run resumes from)."""
        if not metrics.is_file():
            return
        with open(metrics, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], list(reader)
        kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < step]
        if len(kept) != len(rows):
            with files.atomic_path(metrics) as tmp, open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(kept)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_grads(params) -> None:
    """Average gradients over DDP ranks (no-op in one process): for parameters DDP's reducer does not see (the
    guidance's, which live outside the system's modules; the 2D system's three optimisers)."""
    if not _distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def write_rank_checksums(params, save_dir: Path, is_global_zero: bool) -> None:
    """Every rank's (sum, sum of squares) of `params` into `save_dir/ranks.json` (DDP ranks must agree)."""
    flat = torch.cat([p.detach().flatten().double().cpu() for p in params])
    local = torch.stack([flat.sum(), (flat**2).sum()])
    gathered = [local]
    if _distributed():
        gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, local)
    if is_global_zero:
        files.write_text(Path(save_dir) / "ranks.json", json.dumps(
            {"world_size": len(gathered), "checksums": [g.tolist() for g in gathered]}) + "\n")


def loggers(stage_dir: Path, logger: str = "csv") -> list:
    """CSV always; TensorBoard too where it is installed; wandb for `trainer.logger: wandb` (`wandb_logger`)."""
    found = [AppendingCSVLogger(stage_dir, name="logs", version="")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        found.append(TensorBoardLogger(stage_dir, name="tb", version=""))
    except (ImportError, ModuleNotFoundError):
        pass
    if logger == "wandb":
        found.append(wandb_logger(stage_dir))
    return found


def wandb_logger(stage_dir: Path):
    """Lightning's WandbLogger for a stage: offline unless WANDB_MODE says otherwise (`wandb sync` uploads it
    later), run files in `<stage>/wandb/`, project WANDB_PROJECT or the run's name, one wandb run per stage whose
    id follows the stage directory (a resumed stage logs under the same id)."""
    import hashlib

    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_MODE", "offline")
    stage_dir = Path(stage_dir)
    run_id = hashlib.sha1(str(stage_dir.resolve()).encode()).hexdigest()[:16]
    return WandbLogger(name=f"{stage_dir.parent.name}/{stage_dir.name}", save_dir=str(stage_dir), id=run_id,
                       project=os.environ.get("WANDB_PROJECT") or stage_dir.parent.parent.name,
                       group=stage_dir.parent.name, resume="allow")


@contextlib.contextmanager
def finishing_loggers(trainer: L.Trainer):
    """End the stage's wandb run when the block ends (marked failed on an exception): Lightning leaves it open,
    and the next stage (or prompt) would log into it."""
    from lightning.pytorch.loggers import WandbLogger

    def finish(exit_code: int | None = None) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:  # a run was started
                logger._experiment.finish(exit_code=exit_code)

    try:
        yield
    except BaseException:
        finish(exit_code=1)
        raise
    finish()


class StageProgressBar(TQDMProgressBar):
    """One bar per stage, counted in steps: `nerf: 37%| 222/600 [01:23<02:21, loss=612]` (a resumed stage starts
    at its step); validation and the test turntable get short bars named for what they render (Lightning's own
    shows `Epoch 0` over a step count it cannot know)."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    @property
    def train_description(self) -> str:
        return self.stage

    @property
    def validation_description(self) -> str:
        return f"{self.stage}: validation views"

    @property
    def test_description(self) -> str:
        return f"{self.stage}: turntable"

    def on_train_start(self, trainer, *_) -> None:
        super().on_train_start(trainer)
        self._count_steps(trainer)  # a stage resumed mid-epoch gets no on_train_epoch_start from Lightning

    def on_train_epoch_start(self, trainer, *_) -> None:
        self._count_steps(trainer)

    def _count_steps(self, trainer) -> None:
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.initial = bar.n = trainer.global_step
        bar.set_description(self.stage)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.has_dataloader_changed(dataloader_idx):  # as Lightning's, without "… DataLoader 0"
            self._restart(self.val_progress_bar, self.total_val_batches_current_dataloader, self.validation_description)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._restart(self.test_progress_bar, self.total_test_batches_current_dataloader, self.test_description)

    @staticmethod
    def _restart(bar, total, description: str) -> None:
        bar.reset(total=None if total is None or total == float("inf") else total)
        bar.initial = 0
        bar.set_description(description)

    def get_metrics(self, trainer, pl_module) -> dict:
        return {key.removeprefix("train/"): value for key, value in super().get_metrics(trainer, pl_module).items()
                if key != "v_num"}


def make_trainer(cfg: TrainerConfig, stage_dir: Path, extra_callbacks: tuple = ()) -> L.Trainer:
    ckpt_dir = stage_dir / "ckpts"
    callbacks = [
        RandomStates(), FinalCheckpoint(ckpt_dir / "last.ckpt"), *extra_callbacks,
        *([StageProgressBar(stage_dir.name)] if cfg.enable_progress_bar else []),
        ModelCheckpoint(dirpath=ckpt_dir, filename="latest", every_n_train_steps=cfg.checkpoint_every, save_last=True),
        # Ctrl-C, SIGTERM or a crash keeps the current state (Lightning deletes this file again after a clean fit)
        ProgressCheckpoint(dirpath=ckpt_dir, filename="interrupted"),
    ]
    return L.Trainer(
        max_steps=cfg.max_steps, val_check_interval=cfg.val_check_interval, check_val_every_n_epoch=None,
        log_every_n_steps=cfg.log_every_n_steps, accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy, precision=cfg.precision, callbacks=callbacks,
        logger=loggers(stage_dir, cfg.logger),
        gradient_clip_val=cfg.gradient_clip_val, gradient_clip_algorithm=cfg.gradient_clip_algorithm,
        accumulate_grad_batches=cfg.accumulate_grad_batches, num_sanity_val_steps=cfg.num_sanity_val_steps,
        enable_progress_bar=cfg.enable_progress_bar, default_root_dir=stage_dir, enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        # the data modules split training batches by rank themselves (a rank's camera stream is a function of the
        # step and the rank), and every rank sees all evaluation views (rank 0 writes them)
        use_distributed_sampler=False,
    )


def _same_folder(a: str, b: str) -> bool:
    from ui3d.teachers.loader import TeacherNotFound, resolve_model_path

    try:
        return resolve_model_path(a).resolve() == resolve_model_path(b).resolve()
    except TeacherNotFound:
        return False


def teacher_name(system_cfg) -> str:
    """The one teacher of a system: guidance and prompt processor must agree on it."""
    guidance = system_cfg.guidance.get("pretrained_model_name_or_path", "embedded")
    prompts = system_cfg.prompt_processor.get("pretrained_model_name_or_path", "embedded")
    if guidance != prompts and _same_folder(guidance, prompts):
        return guidance
    if guidance != prompts:
        raise ConfigError(
            f"guidance uses teacher '{guidance}' but prompt_processor uses '{prompts}': set both "
            "pretrained_model_name_or_path to the same model"
        )
    return guidance


def checkpoint_step(path: Path) -> int:
    """The global step a checkpoint was written at (reads it safely: `UnreadableFile` when it is bad)."""
    return int(files.torch_load(path, "checkpoint").get("global_step", 0))


def resume_checkpoint(ckpt_dir: Path) -> tuple[str, int] | None:
    """(path, step) of the stage checkpoint to resume: the readable one of `CHECKPOINT_NAMES` with the most steps (the newest on a
    tie). An unreadable one is renamed `<name>.unreadable` with a message naming it and the one used instead; when
    none is readable, `UnreadableFile` names them all. Temporary files of interrupted writes are removed."""
    if ckpt_dir.is_dir():
        files.remove_stale(ckpt_dir)
    readable, bad = [], []
    for path in (ckpt_dir / name for name in CHECKPOINT_NAMES):
        if not path.is_file():
            continue
        try:
            readable.append((checkpoint_step(path), path.stat().st_mtime, path))
        except files.UnreadableFile as err:
            bad.append((path, err))
    if bad and not readable:
        raise files.UnreadableFile(
            f"no readable checkpoint to resume in {ckpt_dir}: {'; '.join(str(e) for _, e in bad)}. Delete "
            f"{', '.join(p.name for p, _ in bad)} to start the stage again")
    if not readable:
        return None
    step, _, best = max(readable)
    for path, err in bad:
        path.replace(path.with_name(path.name + ".unreadable"))
        print(f"warning: {err}; kept as {path.name}.unreadable, resuming from {best} (step {step})", file=sys.stderr)
    return str(best), step


def previous_geometry(experiment: DictConfig, name: str, run_dir: Path):
    """The geometry of an earlier stage, rebuilt from the run's config and its last checkpoint (the handoff)."""
    ckpt = run_dir / name / "ckpts" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(f"this stage converts from stage '{name}', which has no checkpoint {ckpt}: run it first "
                          f"(--stage {name}) or run all stages")
    block = stage_block(experiment, name).system
    geometry = build(block.geometry_type, block.geometry)
    state = files.torch_load(ckpt, "checkpoint")["state_dict"]
    geometry.load_state_dict({k[len("geometry."):]: v for k, v in state.items() if k.startswith("geometry.")})
    return geometry


def previous_guidance_state(name: str, run_dir: Path) -> dict:
    """The guidance state saved in an earlier stage's last checkpoint (`guidance_from`)."""
    ckpt = run_dir / name / "ckpts" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(f"this stage takes its guidance from stage '{name}', which has no checkpoint {ckpt}: run "
                          f"it first (--stage {name}) or run all stages")
    state = files.torch_load(ckpt, "checkpoint").get("guidance_state")
    if state is None:
        raise ConfigError(f"{ckpt} holds no guidance state (written before guidance states were saved by name); "
                          f"rerun stage '{name}' or remove guidance_from")
    return state


def fit_stage(system: L.LightningModule, stage_dir: Path, trainer_cfg: TrainerConfig, datamodule=None,
              resume: tuple[str, int] | None = None) -> None:
    """Fit `system` in `stage_dir` (resuming `resume`, by default its newest readable checkpoint), test it, write
    `done` (rank 0). Ctrl-C raises `KeyboardInterrupt`, SIGTERM `Terminated`, both after a checkpoint and before
    `done`."""
    stop = GracefulStop()
    trainer = make_trainer(trainer_cfg, stage_dir, (stop,))
    with finishing_loggers(trainer):
        _fit_and_test(trainer, stop, system, stage_dir, datamodule, resume)


def _fit_and_test(trainer: L.Trainer, stop: GracefulStop, system: L.LightningModule, stage_dir: Path, datamodule,
                  resume: tuple[str, int] | None) -> None:
    last = stage_dir / "ckpts" / "last.ckpt"
    resume = resume or resume_checkpoint(stage_dir / "ckpts")
    resume_path, start_step = resume if resume else (None, 0)
    if trainer.is_global_zero:
        AppendingCSVLogger.keep_until(stage_dir / "logs" / "metrics.csv", start_step)
    hint = f"rerun with resume={stage_dir.parent} to continue from {stage_dir / 'ckpts'}"
    start = time.time()
    try:
        with stop.installed():
            trainer.fit(system, datamodule=datamodule, ckpt_path=resume_path, weights_only=True)
    except SIGTERMException:  # Lightning's own handler (a SIGTERM before our callback took over)
        raise Terminated(f"terminated; {hint}") from None
    except SystemExit:  # Lightning turns a KeyboardInterrupt into sys.exit(1) after its checkpoint callbacks ran
        if trainer.state.status == TrainerStatus.INTERRUPTED:
            raise KeyboardInterrupt(f"interrupted; {hint}") from None
        raise
    if trainer.interrupted:
        raise KeyboardInterrupt(f"interrupted; {hint}")
    # a fit that trained wrote last.ckpt at its last step (`FinalCheckpoint`); one that had nothing left to train
    # (resumed at max_steps from another checkpoint) writes it here
    if trainer.global_step == start_step and (resume_path is None or Path(resume_path) != last):
        trainer.save_checkpoint(last, weights_only=False)
    if trainer.received_sigterm:
        raise Terminated(f"terminated; {hint}")
    with stop.installed():
        trainer.test(system, datamodule=datamodule, verbose=False, weights_only=True)
    if stop.requested is not None:
        stop._raise(stop.requested)
    if trainer.is_global_zero:
        files.write_text(stage_dir / "done", f"{trainer.global_step} steps, {time.time() - start:.1f} s\n")


def stage_done(stage_dir: Path) -> bool:
    """True (and says so) when the stage finished in an earlier run of this directory."""
    if (stage_dir / "done").is_file():
        print(f"{stage_dir.name}: already done, skipped (delete {stage_dir / 'done'} to run it again)")
        return True
    return False


def teacher_dtype(half_precision_weights, trainer_cfg: TrainerConfig) -> torch.dtype:
    """The dtype the teacher's weights load in: fp32, or fp16 for `half_precision_weights` (`auto`: when the
    trainer runs on CUDA); bf16 where this machine cannot run fp16."""
    setting = str(half_precision_weights).lower()
    if setting not in ("true", "false", "auto"):
        raise ConfigError(f"half_precision_weights must be true, false or auto, not '{half_precision_weights}'")
    on_cuda = torch.cuda.is_available() and trainer_cfg.accelerator in ("auto", "gpu", "cuda")
    if setting == "false" or (setting == "auto" and not on_cuda):
        return torch.float32
    if on_cuda:
        return torch.float16
    try:  # CPU: fp16 convolutions where this torch build has them
        torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3, dtype=torch.float16), torch.ones(1, 1, 1, 1, dtype=torch.float16))
        return torch.float16
    except RuntimeError:
        return torch.bfloat16


def stage_teacher(system_cfg, trainer_cfg: TrainerConfig, load_teacher):
    """The stage's teacher as its guidance block asks: dtype, fused LoRA, a single file's configs."""
    guidance = system_cfg.guidance
    return load_teacher(teacher_name(system_cfg), dtype=teacher_dtype(guidance.get("half_precision_weights", False),
                                                                      trainer_cfg),
                        lora=guidance.get("teacher_lora") or None,
                        lora_scale=float(guidance.get("teacher_lora_scale", 1.0)),
                        config=guidance.get("teacher_config") or None)


def evaluate_stage(system_cls, stage: DictConfig, stage_dir: Path, experiment: DictConfig, load_teacher,
                   mode: str) -> None:
    """threestudio's `--validate` / `--test`: a trained stage's validation views (`save/it<step>-<view>.png`) or
    test turntable (`save/turntable.*`) rendered again from its `ckpts/last.ckpt`; nothing is trained."""
    stage_dir = Path(stage_dir)
    ckpt = stage_dir / "ckpts" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(f"--{mode} renders a trained stage, and stage '{stage_dir.name}' of {stage_dir.parent} has no "
                          f"checkpoint {ckpt}: train it first (or pick another with --stage)")
    trainer_cfg = parse_structured(TrainerConfig, stage.trainer)
    system_cfg = parse_structured(system_cls.Config, stage.system)
    system = system_cls(system_cfg, stage_teacher(system_cfg, trainer_cfg, load_teacher), stage_dir / "save")
    if hasattr(system.geometry, "initialize_from"):  # a mesh takes its vertex count from the checkpoint's mesh
        system.geometry.initialize_from(previous_geometry(experiment, stage_dir.name, stage_dir.parent))
    system.evaluated_step = checkpoint_step(ckpt)  # validation images are named for the step they show
    trainer = make_trainer(trainer_cfg, stage_dir)
    run = trainer.validate if mode == "validate" else trainer.test
    with finishing_loggers(trainer):
        run(system, datamodule=build(stage.data_type, stage.data, trainer_cfg.max_steps), ckpt_path=str(ckpt),
            weights_only=True, verbose=False)


def train_stage(system_cls, stage: DictConfig, stage_dir: Path, experiment: DictConfig, load_teacher) -> None:
    """Fit one stage in `stage_dir` (resuming `ckpts/last.ckpt`), render its test turntable, write `done`."""
    stage_dir = Path(stage_dir)
    if stage_done(stage_dir):
        return
    L.seed_everything(int(experiment.seed), workers=True, verbose=False)
    trainer_cfg = parse_structured(TrainerConfig, stage.trainer)
    system_cfg = parse_structured(system_cls.Config, stage.system)
    system = system_cls(system_cfg, stage_teacher(system_cfg, trainer_cfg, load_teacher), stage_dir / "save")
    resume = resume_checkpoint(stage_dir / "ckpts")
    fresh = resume is None
    if stage.get("convert_from") and fresh:
        system.geometry.initialize_from(previous_geometry(experiment, stage.convert_from, stage_dir.parent))
    if stage.get("guidance_from") and fresh:
        system.guidance.load_state_dict(previous_guidance_state(stage.guidance_from, stage_dir.parent))
    fit_stage(system, stage_dir, trainer_cfg, build(stage.data_type, stage.data, trainer_cfg.max_steps), resume)
