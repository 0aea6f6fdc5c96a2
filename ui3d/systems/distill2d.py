"""One-step 2D distillation (Uni-Instruct's Algorithm 1, DESIGN §4) as a Lightning system.

Generator G_θ(z) = D_θ(σ_init z, σ_init) and fake score D_ψ both start as copies of the teacher's network; each
step makes `fake_steps_per_generator` rounds of (discriminator update → fake-score update), then one generator
update with the configured `DistillObjective` (any method of the family: Uni-Instruct with any f, Diff-Instruct,
DMD/DMD2, SiD/SiDA, SIM, f-distill), then the generator EMA. Every loss comes from `ui3d.distill`.

Runs through `launch.py` like the 3D system: checkpoints every `checkpoint_every` steps and on Ctrl-C, `resume=`,
CSV logs, sample grids every `val_check_interval` steps, and at the end `save/metrics.json` (mixture teachers:
MMD with its floor, modes covered, mode-weight TV, and the discriminator's log r against the exact one).
DDP (`trainer.devices`, `trainer.num_nodes`): each rank draws its own z; gradients are averaged by an explicit
all-reduce after every backward (DDP's reducer cannot follow three backward passes in one step).
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig
from torch import Tensor, nn

from ui3d import files, find, register
from ui3d.config import ConfigError, TrainerConfig, build, parse_structured
from ui3d.diffusion.weighting import paper_time_weight, truncated_snr_weight
from ui3d.distill import losses
from ui3d.distill.objective import DistillObjective
from ui3d.export.images import to_uint8
from ui3d.distill2d.networks import OneStepGenerator
from ui3d.systems.runner import all_reduce_grads, fit_stage, stage_done, write_rank_checksums
from ui3d.training import ema_decay, ema_update, frozen, mix_seed


@dataclass
class Distill2DConfig:
    teacher_type: str = "mixture-teacher"
    teacher: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    """The generator objective (`DistillObjective.Config`: method, divergence, form, weighting, lambda_gan, …)."""
    batch_size: int = 256
    sigma_init: float = 2.5
    """G_θ(z) = D_θ(σ_init z, σ_init) (SiD's value)."""
    min_step_percent: float = 0.02
    max_step_percent: float = 0.98
    """Range of the loss and DSM timesteps, as fractions of the schedule."""
    guidance_scale: float = 1.0
    """CFG on the teacher in the generator loss."""
    fake_steps_per_generator: int = 1
    """Discriminator + fake-score rounds per generator update (1: SiD; 5: DMD2)."""
    discriminator: str = "teacher"
    """`teacher` | `fake` | `channel-mean` heads on a UNet's mid block; `mlp` for vector (mixture) teachers. With
    `fake` (DMD2, SiDA) the head and the fake score's encoder form the discriminator: its BCE loss joins the fake
    score's DSM loss in one update of both (`lambda_fake_gan`)."""
    lambda_fake_gan: float = 1.0
    """`discriminator: fake`: the fake score and the head minimise DSM + lambda_fake_gan × BCE, both per sample
    (the DSM summed over a sample's elements). 1 is SiDA's balance; DMD2 averages its DSM over elements and
    weighs the BCE 1e-2, which is 1e-2 × the elements per sample here."""
    lr_generator: float = 1e-4
    lr_fake: float = 1e-4
    lr_discriminator: float = 1e-4
    betas: list = field(default_factory=lambda: [0.0, 0.999])
    """Adam betas of all three (SiD and DMD2 use β1 = 0)."""
    ema_decay: float = 0.999
    rkl_warm_start_steps: int = 0
    """Use `rkl` for the first N steps, then `loss.divergence` (the paper's RKL → FKL warm start, in one run)."""
    warm_start: Optional[str] = None
    """A checkpoint (or run directory) whose generator, EMA, fake score and discriminator start this run (the
    RKL → FKL warm start from a separate RKL run); ignored when resuming this run's own checkpoint."""
    n_eval_samples: int = 2000
    """Samples for the end-of-run metrics."""
    grid_samples: int = 64
    seed: int = 0


PIPELINE_DIR = "pipeline"
"""Where a 2D run saves its student as a diffusers pipeline: `<run>/pipeline/`."""


def _rng(seed: int, step: int, stream: int) -> torch.Generator:
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return torch.Generator().manual_seed((mix_seed(seed, step) * 7 + stream) * 1009 + rank)


def find_checkpoint(path: str) -> Path:
    """A checkpoint file, or the `last.ckpt` inside a run or stage directory."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    found = sorted(p.glob("**/ckpts/last.ckpt"))
    if not found:
        raise ConfigError(f"warm_start: no checkpoint at {p} (give a .ckpt file or a run directory with ckpts/last.ckpt)")
    return found[0]


@register("distill2d-system")
class Distill2DSystem(L.LightningModule):
    """Algorithm 1: discriminator → fake score → generator, with EMA."""

    Config = Distill2DConfig

    def __init__(self, cfg: Distill2DConfig, save_dir: Path):
        super().__init__()
        self.automatic_optimization = False
        self.cfg, self.save_dir = cfg, Path(save_dir)
        self.teacher = build(cfg.teacher_type, cfg.teacher)  # not a submodule: no frozen weights in checkpoints
        objective_cfg = parse_structured(DistillObjective.Config, cfg.loss)
        self.objective = DistillObjective(objective_cfg)
        self.warm_objective = DistillObjective(dataclasses.replace(objective_cfg, divergence="rkl"))
        self.generator = OneStepGenerator(self.teacher.network(), cfg.sigma_init)
        self.ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.fake = self.teacher.network() if self.objective.needs_fake else None
        self.discriminator = self.teacher.discriminator(cfg.discriminator, self.fake) if self.objective.needs_ratio else None

    # --- pieces -------------------------------------------------------------------------------------------
    def current_objective(self) -> DistillObjective:
        warm = self.global_step < self.cfg.rkl_warm_start_steps
        return self.warm_objective if warm else self.objective

    def noise(self, x0: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(t, alpha_t, sigma_t, x_t) at timesteps uniform in the configured range."""
        schedule = self.teacher.schedule
        t = schedule.sample_t(len(x0), self.cfg.min_step_percent, self.cfg.max_step_percent, generator=g)
        alpha, sigma = (a.view(-1, *[1] * (x0.dim() - 1)) for a in schedule.alpha_sigma(t))
        return t, alpha, sigma, alpha * x0 + sigma * torch.randn(x0.shape, generator=g)

    def generate(self, n: int, g: torch.Generator, ema: bool = False):
        """(x0, cond, uncond, labels) from z ~ N(0, I)."""
        cond, uncond, labels = self.teacher.conditions(n, g)
        z = torch.randn(n, *self.teacher.shape, generator=g)
        return (self.ema if ema else self.generator)(z, cond), cond, uncond, labels

    def _trainable(self, module: Optional[nn.Module]) -> list[nn.Parameter]:
        return [p for p in module.parameters() if p.requires_grad] if module is not None else []

    def _step(self, opts: list, loss: Tensor, params: list[nn.Parameter], raw: bool) -> None:
        """One backward of `loss` and a step of each optimizer in `opts` (over `params`)."""
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        model = self.trainer.strategy.model
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model.require_backward_grad_sync = False  # DDP's reducer stays out; `all_reduce_grads` averages
        self.manual_backward(loss)
        all_reduce_grads(params)
        for opt in opts:  # fake score and discriminator step their raw optimizers: global_step counts generator updates
            (opt.optimizer if raw else opt).step()

    def time_weight(self, t: Tensor) -> Tensor:
        """½ g²(t) / p(t) for the `paper` weighting (t uniform on the configured span)."""
        return paper_time_weight(self.teacher.schedule, t, self.cfg.min_step_percent, self.cfg.max_step_percent)

    # --- training -----------------------------------------------------------------------------------------
    def configure_optimizers(self):
        betas = tuple(self.cfg.betas)
        opts = [torch.optim.Adam(self._trainable(self.generator), lr=self.cfg.lr_generator, betas=betas)]
        for module, lr in ((self.fake, self.cfg.lr_fake), (self.discriminator, self.cfg.lr_discriminator)):
            params = self._trainable(module)
            # an empty module (channel-mean head, sds) still gets an optimizer so the list keeps its order
            opts.append(torch.optim.Adam(params or [nn.Parameter(torch.zeros(1))], lr=lr, betas=betas))
        return opts

    def on_train_start(self) -> None:
        self._warm_start()

    def _warm_start(self) -> None:
        if not self.cfg.warm_start or self.trainer.ckpt_path is not None:
            return
        ckpt = find_checkpoint(self.cfg.warm_start)
        state = files.torch_load(ckpt, "warm_start checkpoint").get("state_dict", {})
        keep = {k: v for k, v in state.items() if k.split(".")[0] in ("generator", "ema", "fake", "discriminator")}
        missing, unexpected = self.load_state_dict(keep, strict=False)
        print(f"warm start from {ckpt}: {len(keep)} tensors loaded"
              + (f", {len(unexpected)} not used" if unexpected else ""))

    def critic_losses(self, g: torch.Generator) -> dict[str, Tensor]:
        """On one batch of generator samples: the discriminator's BCE (`loss_disc`, real teacher samples against
        generator samples at the same t, with its stats) and the fake score's DSM loss (`loss_fake`)."""
        cfg, out = self.cfg, {}
        with torch.no_grad():
            x_fake, cond, _, _ = self.generate(cfg.batch_size, g)
        if self.discriminator is not None and self._trainable(self.discriminator):
            x_real, cond_real = self.teacher.real(cfg.batch_size, g)
            t, alpha, sigma, xf_t = self.noise(x_fake, g)
            xr_t = alpha * x_real + sigma * torch.randn(x_real.shape, generator=g)
            loss_d, stats = losses.gan_discriminator(self.discriminator(xr_t, t, cond_real),
                                                     self.discriminator(xf_t, t, cond))
            out.update({"loss_disc": loss_d, **stats})
        if self.fake is not None:
            t, alpha, sigma, x_t = self.noise(x_fake, g)
            weight = truncated_snr_weight((alpha / sigma).flatten() ** 2)
            out["loss_fake"] = losses.dsm(self.fake(x_t, t, cond), x_fake, weight=weight)[0]
        return out

    def critic_step(self, g: torch.Generator, opt_f, opt_d) -> dict[str, Tensor]:
        """One discriminator and fake-score update. The head alone (on the teacher's features) steps on the BCE,
        then the fake score on its DSM loss; with `discriminator: fake` the BCE also trains the fake score's
        encoder, so both step once on DSM + `lambda_fake_gan` × BCE (DMD2's and SiDA's fake-score update)."""
        out = self.critic_losses(g)
        disc, fake = self._trainable(self.discriminator), self._trainable(self.fake)
        if "loss_disc" in out and "loss_fake" in out and self.cfg.discriminator == "fake":
            loss = out["loss_fake"] + self.cfg.lambda_fake_gan * out["loss_disc"]
            self._step([opt_f, opt_d], loss, fake + disc, raw=True)
            return out
        if "loss_disc" in out:
            self._step([opt_d], out["loss_disc"], disc, raw=True)
        if "loss_fake" in out:
            self._step([opt_f], out["loss_fake"], fake, raw=True)
        return out

    def training_step(self, batch, batch_idx: int) -> None:
        cfg, step = self.cfg, self.global_step
        opt_g, opt_f, opt_d = self.optimizers()
        logs = {}
        for k in range(cfg.fake_steps_per_generator):
            logs.update(self.critic_step(_rng(cfg.seed, step, 1 + k), opt_f, opt_d))
        g = _rng(cfg.seed, step, 0)
        x0, cond, uncond, _ = self.generate(cfg.batch_size, g)
        t, alpha, sigma, x_t = self.noise(x0, g)
        with frozen([*self._trainable(self.fake), *self._trainable(self.discriminator)]):
            d_teacher = self.teacher.denoise_cfg(x_t, t, cond, uncond, cfg.guidance_scale)
            d_fake = self.fake(x_t, t, cond) if self.fake is not None else None
            logit = self.discriminator(x_t, t, cond) if self.discriminator is not None else None
        n = self.teacher.schedule.num_train_timesteps
        out = self.current_objective()(x0, x_t, alpha.flatten(), sigma.flatten(), d_teacher, d_fake, logit=logit,
                                       t=t.float() / n, time_weight=self.time_weight(t))
        self._step([opt_g], out["loss"], self._trainable(self.generator), raw=False)
        ema_update(self.ema.parameters(), self.generator.parameters(), ema_decay(cfg.ema_decay, step))
        logs.update({k: v for k, v in out.items() if v.dim() == 0})
        for key, value in logs.items():
            self.log(f"train/{key}", float(value.detach()), prog_bar=key in ("loss", "loss_fake"))

    # --- data: the system draws its own noise; the loaders only count steps --------------------------------
    def train_dataloader(self):
        return torch.utils.data.DataLoader(range(max(self.trainer.max_steps, 1)), batch_size=None)

    def val_dataloader(self):
        return torch.utils.data.DataLoader([0], batch_size=None)

    def test_dataloader(self):
        return torch.utils.data.DataLoader([0], batch_size=None)

    # --- outputs ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, n: int, seed: int) -> tuple[Tensor, list]:
        """n samples of the EMA generator (one network evaluation each)."""
        g, out, labels = torch.Generator().manual_seed(seed), [], []
        for i in range(0, n, 512):
            x, _, _, lab = self.generate(min(512, n - i), g, ema=True)
            out.append(x)
            labels += lab
        return torch.cat(out), labels

    def save_grid(self, path: Path) -> None:
        import imageio.v3 as iio

        images_out = len(self.teacher.shape) > 1  # vectors are shown as one histogram of many samples
        x, _ = self.samples(self.cfg.grid_samples if images_out else self.cfg.n_eval_samples, seed=1234)
        images = self.teacher.to_images(x)
        if images.shape[0] > 1:
            side = int(images.shape[0] ** 0.5)
            images = images[: side * side].reshape(side, side, *images.shape[1:])
            images = images.permute(2, 0, 3, 1, 4).reshape(images.shape[2], side * images.shape[3], -1)[None]
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, to_uint8(images[0].permute(1, 2, 0)))

    def validation_step(self, batch, batch_idx: int) -> None:
        if self.trainer.is_global_zero:
            self.save_grid(self.save_dir / f"it{self.global_step}.png")

    def test_step(self, batch, batch_idx: int) -> None:
        if not self.trainer.is_global_zero:
            return
        self.save_grid(self.save_dir / "samples.png")
        metrics = {"steps": int(self.global_step)}
        from ui3d.distill2d import evaluate

        if hasattr(self.teacher, "mixture"):
            metrics.update(evaluate.mixture_metrics(self, self.cfg.n_eval_samples))
        elif evaluate.is_digits_teacher(self.teacher):
            x, labels = self.samples(self.cfg.n_eval_samples, seed=2024)
            metrics["samples"] = evaluate.digit_metrics(x, labels, evaluate.mnist_reference(self.cfg.n_eval_samples))
            self.save_dir.mkdir(parents=True, exist_ok=True)  # kept for later metrics (Inception FID)
            uint8 = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # [N, 1, 16, 16]
            files.torch_save({"images": uint8, "labels": torch.as_tensor(labels)}, self.save_dir / "samples.pt")
        files.write_text(self.save_dir / "metrics.json", json.dumps(metrics, indent=1) + "\n")

    def on_train_end(self) -> None:
        """Write every rank's generator checksum to `save/ranks.json` (DDP ranks must hold the same weights)."""
        write_rank_checksums(self.generator.parameters(), self.save_dir, self.trainer.is_global_zero)

    # --- launch.py entry points ---------------------------------------------------------------------------
    @classmethod
    def check(cls, stage: DictConfig) -> None:
        """Cheap checks before the run directory is made: the objective's and the teacher's blocks."""
        system = parse_structured(cls.Config, stage.system)
        trainer = parse_structured(TrainerConfig, stage.trainer)
        if trainer.gradient_clip_val is not None or trainer.accumulate_grad_batches != 1:
            raise ConfigError("the 2D system steps its generator and fake score itself: trainer.gradient_clip_val and "
                              "trainer.accumulate_grad_batches apply to text-to-3D stages only; remove them")
        DistillObjective(parse_structured(DistillObjective.Config, system.loss))
        teacher = find(system.teacher_type)
        teacher_cfg = parse_structured(teacher.Config, system.teacher)
        if hasattr(teacher, "check"):
            teacher.check(teacher_cfg)
        if system.warm_start:  # a file a user may be handed: refused before anything is written if it is unsafe
            ckpt = find_checkpoint(system.warm_start)
            if "state_dict" not in files.torch_load(ckpt, "warm_start checkpoint"):
                raise ConfigError(f"warm_start {ckpt} is not a Lightning checkpoint (no state_dict): give a run's "
                                  "ckpts/last.ckpt or its run directory")

    @classmethod
    def run(cls, stage: DictConfig, stage_dir: Path, experiment: DictConfig) -> None:
        """Train the stage, then save the student as a diffusers pipeline in `<run>/pipeline/` (rank 0)."""
        stage_dir = Path(stage_dir)
        if stage_done(stage_dir):
            return
        L.seed_everything(int(experiment.seed), workers=True, verbose=False)
        system_cfg = parse_structured(cls.Config, stage.system)
        system_cfg.seed = int(experiment.seed)
        system = cls(system_cfg, stage_dir / "save")
        fit_stage(system, stage_dir, parse_structured(TrainerConfig, stage.trainer))
        if rank_zero_only.rank == 0:
            system.save_pipeline(stage_dir.parent / PIPELINE_DIR)

    @classmethod
    def export(cls, stage: DictConfig, stage_dir: Path, experiment: DictConfig) -> dict[str, Path]:
        """`--export`: the student of the stage's last checkpoint as a pipeline in `<run>/pipeline/`."""
        system = cls.from_checkpoint(Path(stage_dir) / "ckpts" / "last.ckpt")
        return {"pipeline": system.save_pipeline(Path(stage_dir).parent / PIPELINE_DIR)}

    @classmethod
    def from_checkpoint(cls, run: str | Path) -> Distill2DSystem:
        """The system of a 2D run (its run directory or a checkpoint), rebuilt from the run's `config.yaml` and
        the checkpoint (read with `weights_only=True`)."""
        from ui3d.config import load_config, stage_block, stage_names

        try:
            ckpt = find_checkpoint(str(run))
        except ConfigError:
            raise ConfigError(f"no student at {run}: give a 2D run directory (with <stage>/ckpts/last.ckpt) or a "
                              "last.ckpt") from None
        run_dir, stage = ckpt.parent.parent.parent, ckpt.parent.parent.name
        cfg = load_config(str(run_dir / "config.yaml")).cfg
        block = stage_block(cfg, stage if stage in stage_names(cfg) else stage_names(cfg)[0])
        if block.system_type != "distill2d-system":
            raise ConfigError(f"{run_dir} is a {block.system_type} run, not a 2D student (distill2d-system)")
        system = cls(parse_structured(cls.Config, block.system), run_dir / stage / "save")
        system.load_state_dict(files.torch_load(ckpt, "student checkpoint")["state_dict"])
        return system.eval()

    def save_pipeline(self, folder: Path) -> Path:
        """The EMA generator as a `OneStepPipeline` folder (safetensors), written whole or not at all."""
        from ui3d.distill2d.pipeline import OneStepPipeline

        with files.atomic_dir(folder) as tmp:
            OneStepPipeline.from_system(self).save_pretrained(tmp)
        print(f"student pipeline: {folder}")
        return Path(folder)
