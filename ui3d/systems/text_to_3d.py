"""The text-to-3D system (Uni-Instruct's Algorithm 2 as a threestudio system): geometry + material + background +
renderer, driven by a guidance through a prompt processor, stepped by Lightning.

`TextTo3DSystem.run` is what `launch.py` calls for one stage: it loads the teacher once (through the loader),
builds the parts from their config blocks, trains with checkpoints every `checkpoint_every` steps (a rerun of
the same run directory resumes from `ckpts/last.ckpt`), renders validation grids, and finishes with a turntable.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from ui3d import find, register
from ui3d.config import ConfigError, TrainerConfig, build, parse_structured
from ui3d.data.cameras import view_prompt
from ui3d.renderers import regularizers
from ui3d.schedule import scheduled
from ui3d.export.images import save_grid, save_video
from ui3d.systems.runner import (all_reduce_grads, evaluate_stage, teacher_dtype, teacher_name, train_stage,
                                 write_rank_checksums)
from ui3d.prompt.prompt_processor import styled_prompt
from ui3d.teachers.loader import load_teacher, load_tokenizer, lora_file
from ui3d.teachers.teacher import check_prompts

GUIDANCE_LOSSES = ("sds", "vsd", "uniinstruct", "lora", "disc")
"""Guidance losses weighted 1 unless the config's `loss:` block gives a `lambda_<name>`."""
REGULARISERS = ("sparsity", "opaque", "orient")
"""Regularisers of every render, weighted 0 unless the `loss:` block gives a `lambda_<name>`."""


def _scalar(value) -> float:
    return float(value.detach()) if torch.is_tensor(value) else float(value)


@dataclass
class TextTo3DConfig:
    geometry_type: str = "implicit-volume"
    geometry: dict = field(default_factory=dict)
    material_type: str = "diffuse-with-point-light-material"
    material: dict = field(default_factory=dict)
    background_type: str = "solid-color-background"
    background: dict = field(default_factory=dict)
    renderer_type: str = "nerf-volume-renderer"
    renderer: dict = field(default_factory=dict)
    prompt_processor_type: str = "prompt-processor"
    prompt_processor: dict = field(default_factory=dict)
    guidance_type: str = "uniinstruct"
    guidance: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)
    """`lambda_<name>`: weight (or step schedule) of `loss_<name>`; regularisers `sparsity`, `opaque`, `orient`."""
    optimizer: dict = field(default_factory=lambda: {"name": "Adam", "lr": 0.01, "betas": [0.9, 0.99], "eps": 1e-15})
    """torch.optim class `name` and its arguments for the scene's parameters (guidance groups bring their own lr);
    `params: {geometry.encoding: {lr: 0.01}, geometry.density_network: {lr: 0.001}, ...}` gives modules of the
    scene their own arguments, as threestudio's `optimizer.params` does; a `null` entry drops an inherited one
    (a later stage's mesh has no `geometry.density_network`)."""
    guidance_input: str = "comp_rgb"
    """Render output the guidance sees: `comp_rgb`, or `comp_normal_vis` for SDS on normal maps (stage 2)."""
    export_mesh: bool = False
    """After the stage, export the textured mesh (OBJ + MTL + PNG, GLB) into the stage's `save/`."""
    export: dict = field(default_factory=dict)
    """Options of `ui3d.export.mesh.export_geometry`: texture_size, turntable_views, turntable_size, …"""


@register("text-to-3d-system")
class TextTo3DSystem(L.LightningModule):
    """Renders random views, asks the guidance for its losses, adds the regularisers, steps."""

    Config = TextTo3DConfig

    def __init__(self, cfg: TextTo3DConfig, teacher, save_dir: Path):
        super().__init__()
        self.cfg, self.save_dir = cfg, Path(save_dir)
        self.evaluated_step: int | None = None  # set by --validate/--test: the checkpoint's step names the images
        self.geometry = build(cfg.geometry_type, cfg.geometry)
        self.material = build(cfg.material_type, cfg.material)
        self.background = build(cfg.background_type, cfg.background)
        self.renderer = build(cfg.renderer_type, cfg.renderer, self.geometry, self.material, self.background)
        # the teacher is not a submodule: its frozen weights stay out of checkpoints
        self.prompt_processor = build(cfg.prompt_processor_type, cfg.prompt_processor, teacher)
        self.guidance = build(cfg.guidance_type, cfg.guidance, teacher)

    def _apply(self, fn, *args, **kwargs):
        """Lightning moves and casts the system with `_apply` (`.to(device)`, `.double()` for `64-true`): the
        teacher, the fake score, the discriminator and the prompt embeddings, which are not submodules (the frozen
        teacher stays out of checkpoints), follow."""
        super()._apply(fn, *args, **kwargs)
        self.guidance.apply(fn)
        self.prompt_processor.apply(fn)
        return self

    # -- checkpoints: the guidance's trainable parts (LoRA, camera embedding, discriminator, ratio statistics)
    # ride along under the guidance's own names; checkpoints from before keyed parameters by position ("g.i")
    def _guidance_parameters(self):
        for g, group in enumerate(self.guidance.trainable_parameters()):
            for i, p in enumerate(group["params"]):
                yield f"{g}.{i}", p

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["guidance_state"] = {k: v.detach().clone() for k, v in self.guidance.state_dict().items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "guidance_state" in checkpoint:
            self.guidance.load_state_dict(checkpoint["guidance_state"])
            return
        saved = checkpoint.get("guidance", {})
        with torch.no_grad():
            for name, p in self._guidance_parameters():
                if name in saved:
                    p.copy_(saved[name])

    def configure_optimizers(self):
        opt = dict(self.cfg.optimizer)
        cls, groups = getattr(torch.optim, opt.pop("name")), self.scene_parameter_groups(opt.pop("params", None))
        return cls([*groups, *self.guidance.trainable_parameters()], **opt)

    def scene_parameter_groups(self, params: dict | None) -> list[dict]:
        """One optimizer group per module named in `params` (dotted names under the system, threestudio's
        `optimizer.params`) with its own arguments, and one for the rest of the scene's trainable parameters;
        names whose options are None are skipped."""
        groups, taken = [], set()
        for name, options in (params or {}).items():
            if options is None:
                continue
            try:
                module = self.get_submodule(name)
            except AttributeError:
                raise ValueError(f"optimizer.params names '{name}', which is not a module of the system "
                                 "(e.g. geometry.encoding, geometry.density_network)") from None
            group = [p for p in module.parameters() if p.requires_grad and id(p) not in taken]
            taken.update(map(id, group))
            groups.append({"params": group, **dict(options or {})})
        rest = [p for m in (self.geometry, self.material, self.background) for p in m.parameters()
                if p.requires_grad and id(p) not in taken]
        return [group for group in [*groups, {"params": rest}] if group["params"]]

    def on_after_backward(self) -> None:
        """DDP: DDP's reducer averages the scene's gradients; the guidance's networks are not submodules of the
        system, so their gradients (LoRA, camera embedding, discriminator head) are averaged here."""
        all_reduce_grads([p for group in self.guidance.trainable_parameters() for p in group["params"]])

    def on_train_end(self) -> None:
        """Every rank's checksum of the scene and the guidance's trained parts into `save/ranks.json`."""
        guidance = [p for group in self.guidance.trainable_parameters() for p in group["params"]]
        write_rank_checksums([*self.parameters(), *guidance], self.save_dir, self.trainer.is_global_zero)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        for part in (self.renderer, self.material, self.guidance):
            if hasattr(part, "update_step"):
                part.update_step(self.global_step)

    def lambda_(self, name: str, default: float = 0.0) -> float:
        return scheduled(self.cfg.loss.get(f"lambda_{name}", default), self.global_step)

    def render(self, batch: dict) -> dict:
        """The renderer on the batch keys it declares (`inputs`; rays by default, cameras for rasterizers)."""
        inputs = getattr(self.renderer, "inputs", ("rays_o", "rays_d", "light_positions"))
        return self.renderer(**{key: batch[key] for key in inputs})

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.render(batch)
        embeds = self.prompt_processor(batch["elevation"], batch["azimuth"])
        terms = self.guidance(out[self.cfg.guidance_input], embeds, batch["c2w"], self.global_step)
        terms.update({k: v for k, v in out.items() if k.startswith("loss_")})  # renderer/geometry regularisers
        terms["loss_sparsity"] = regularizers.sparsity(out["opacity"])
        terms["loss_opaque"] = regularizers.opacity_entropy(out["opacity"])
        if "normal" in out and "weights" in out:
            terms["loss_orient"] = regularizers.orientation(
                out["weights"], out["normal"], out["t_dirs"], out["opacity"])
        loss = 0.0
        for key, value in terms.items():
            if key.startswith("loss_"):
                name = key[len("loss_"):]
                weight = self.lambda_(name, 1.0 if name in GUIDANCE_LOSSES else 0.0)
                loss = loss + weight * value if weight else loss
            self.log(f"train/{key}", _scalar(value), prog_bar=key == "loss_" + self.cfg.guidance_type)
        self.log("train/loss", _scalar(loss), prog_bar=True)
        return loss

    def _render_eval(self, batch: dict) -> dict:
        with torch.no_grad():
            return self.render(batch)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.trainer.is_global_zero:  # every rank sees every view; one writes
            step = self.global_step if self.evaluated_step is None else self.evaluated_step
            save_grid(self.save_dir / f"it{step}-{batch['index']}.png", self._render_eval(batch))

    def on_test_epoch_start(self) -> None:
        self._frames = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        if self.trainer.is_global_zero:
            self._frames.append(self._render_eval(batch)["comp_rgb"][0].clamp(0, 1))

    def on_test_epoch_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        save_video(self.save_dir / "turntable", self._frames)
        if self.cfg.export_mesh:
            from ui3d.export.mesh import export_geometry

            export_geometry(self.geometry, self.save_dir / "export", **self.cfg.export)

    @staticmethod
    def loss_names(cfg: TextTo3DConfig) -> list[str]:
        """The `<name>`s a `loss.lambda_<name>` may weigh: guidance losses, regularisers, the renderer's own."""
        return [*GUIDANCE_LOSSES, *REGULARISERS, *getattr(find(cfg.renderer_type), "losses", ()),
                *getattr(find(cfg.geometry_type), "losses", ())]

    @classmethod
    def check(cls, stage: DictConfig) -> None:
        """Cheap checks before the run directory is made: a prompt, one teacher for guidance and prompts, a sound
        teacher folder, the prompt's words (the tokenizer alone is loaded), loss weights that weigh a loss."""
        system = parse_structured(cls.Config, stage.system)
        pp = system.prompt_processor
        if not str(pp.get("prompt") or "").strip():
            raise ConfigError('the prompt is empty: say what to make, e.g. prompt="a red vase"')
        name = teacher_name(system)
        if system.guidance.get("teacher_lora"):
            lora_file(system.guidance["teacher_lora"])
        teacher_dtype(system.guidance.get("half_precision_weights", False), parse_structured(TrainerConfig, stage.trainer))
        tokenizer = load_tokenizer(name, system.guidance.get("teacher_config") or None)
        try:
            prompt = styled_prompt(pp.get("prompt", ""), str(pp.get("prompt_template", "{prompt}")),
                                   pp.get("drop_words") or [])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        check_prompts(tokenizer, [view_prompt(prompt, "overhead"), pp.get("negative_prompt", "")], name)
        known = cls.loss_names(system)
        for key in system.loss:
            if not (key.startswith("lambda_") and key[len("lambda_"):] in known):
                close = difflib.get_close_matches(key, [f"lambda_{n}" for n in known], n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"'system.loss.{key}' weighs no loss of this system.{hint} Its losses: "
                                  f"{', '.join('lambda_' + n for n in known)}")

    @classmethod
    def run(cls, stage: DictConfig, stage_dir: Path, experiment: DictConfig) -> None:
        train_stage(cls, stage, stage_dir, experiment, load_teacher)

    @classmethod
    def evaluate(cls, stage: DictConfig, stage_dir: Path, experiment: DictConfig, mode: str) -> None:
        """`--validate` / `--test` of a trained stage (`ui3d.systems.runner.evaluate_stage`)."""
        evaluate_stage(cls, stage, stage_dir, experiment, load_teacher, mode)
