"""Uni-Instruct guidance for text-to-3D (Wang et al. 2025, Algorithm 2 and Appendix E; DESIGN §3.2 and §5).

VSD's fake score (ProlificDreamer: LoRA on the teacher UNet + camera embedding) plus a discriminator on UNet
mid-block features of noised renders vs noised "real" images (`real_pool`), r = exp(logit). The generator loss is
`ui3d.distill.losses.uniinstruct` (any f, `form: exact|paper`) with gradients through the teacher's and the fake
score's inputs, plus `lambda_gan` × `losses.gan_generator`; the discriminator trains on `losses.gan_discriminator`,
the fake score on `losses.dsm`. No loss is written here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor

from ui3d.diffusion.unet_encoder import capture_mid_block
from ui3d.distill import losses
from ui3d.distill.discriminator import build_head, mid_block_channels
from ui3d.distill.objective import DistillObjective, ObjectiveConfig
from ui3d.distill.real_pool import REAL_POOL_CACHE_DIR, RealPool
from ui3d.guidance.base import Noised
from ui3d.guidance.fake_score import FakeScoreGuidance
from ui3d.registry import register
from ui3d.schedule import scheduled
from ui3d.teachers.teacher import DiffusionTeacher
from ui3d.training import frozen


def scale_gradient(x, weight: float):
    """x (a tensor or a tuple of them) in value; its gradient multiplied by `weight` on the way back."""
    def one(v: Tensor) -> Tensor:
        return v if weight == 1.0 else v.detach() + weight * (v - v.detach())

    return tuple(map(one, x)) if isinstance(x, tuple) else one(x)


@register("uniinstruct")
class UniInstructGuidance(FakeScoreGuidance):
    """Fake score + density-ratio discriminator + the shared Uni-Instruct f-divergence loss."""

    method = "uniinstruct"

    @dataclass
    class Config(FakeScoreGuidance.Config, ObjectiveConfig):
        """The fake score's and the discriminator's settings, and every `ObjectiveConfig` field (`divergence`,
        `form`, `detach_ratio`, `ratio_gradient`, `table5`, `normalize_ratio`, `ratio_clip`, …) with 3D defaults
        where these differ."""

        weighting: str = "normalized"
        """Per-time weight; `normalized` is SiD/DMD's 1/mean|x0 − D_q| (`exact` gives the divergence's units)."""
        ratio_momentum: float = 0.98
        """Momentum of the ratio normalisation's running means (one or a few views per step)."""
        ratio_clip: list = field(default_factory=lambda: [0.1, 10.0])
        """Bounds of the normalised r."""
        lambda_gan: float = 0.1
        """Weight of the GAN generator term softplus(−logit) inside `loss_uniinstruct`."""
        discriminator: str = "teacher"
        """Features of the head: `teacher` (teacher UNet mid block), `fake` (the LoRA fake's), or
        `channel-mean` (parameter-free channel mean of the teacher's bottleneck)."""
        disc_lr: float = 1.0e-4
        """Learning rate of the discriminator head."""
        real_pool_size: int = 16
        """Real images per prompt and view bucket (teacher samples, generated once and cached)."""
        real_sampling_steps: int = 25
        """DDIM steps of the real-image teacher samples (CFG at `guidance_scale`)."""
        real_images_dir: Optional[str] = None
        """A folder of real images instead of teacher samples (`<dir>/<view>/` per view bucket if present)."""
        real_pool_cache_dir: str = REAL_POOL_CACHE_DIR
        """Where teacher samples are cached (git-ignored)."""
        rkl_warm_start_steps: int = 0
        """Use `rkl` for the first N steps, then `divergence` (the paper's RKL → FKL warm start)."""
        input_gradient: Any = 1.0
        """Weight (a float or a step schedule) of the gradient that flows through the teacher's and the fake
        score's inputs x_t (the score-identity terms of SiD and Uni-Instruct). 1 is the exact loss; 0 leaves its
        direct term, −2h(r)(D_q − D_p) on the render: Diff-Instruct's / VSD's gradient weighted by h(r) as in
        f-distill. A schedule from 0 to 1 is a softer warm start."""

    def __init__(self, cfg: UniInstructGuidance.Config, teacher: DiffusionTeacher):
        super().__init__(cfg, teacher)
        warm = dataclasses.replace(self.objective_config(), divergence="rkl")
        self.warm_objective = DistillObjective(warm) if self.cfg.rkl_warm_start_steps > 0 else None
        self.head = build_head(self.cfg.discriminator, mid_block_channels(teacher.unet)).to(self.device)
        self.pool = RealPool(teacher, self.cfg.real_pool_size, self.cfg.real_sampling_steps, self.cfg.guidance_scale,
                             self.cfg.real_pool_cache_dir, self.cfg.real_images_dir)

    def objective_config(self) -> DistillObjective.Config:
        """The objective's block: this guidance's `ObjectiveConfig` fields and its method."""
        settings = {f.name: getattr(self.cfg, f.name) for f in dataclasses.fields(ObjectiveConfig)}
        return DistillObjective.Config(method=self.method, **settings)

    def current_objective(self) -> DistillObjective:
        """`rkl` during the warm start, then the configured divergence."""
        warm = self.warm_objective is not None and self.global_step < self.cfg.rkl_warm_start_steps
        return self.warm_objective if warm else self.objective

    def modules(self) -> list[torch.nn.Module]:
        return [*super().modules(), self.head]

    def trainable_parameters(self) -> list[dict]:
        head = list(self.head.parameters())
        return super().trainable_parameters() + ([{"params": head, "lr": self.cfg.disc_lr}] if head else [])

    def objectives(self) -> dict[str, DistillObjective]:
        """The objectives by checkpoint prefix (the warm start's rkl one too)."""
        return {"objective": self.objective, **({"warm_objective": self.warm_objective} if self.warm_objective else {})}

    def state_dict(self) -> dict[str, Tensor]:
        state = {**super().state_dict(), **{f"disc.{n}": v for n, v in self.head.state_dict().items()}}
        for prefix, objective in self.objectives().items():
            state.update({f"{prefix}.{n}": v for n, v in objective.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        super().load_state_dict(state)
        self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("disc.")})
        for prefix, objective in self.objectives().items():
            objective.load_state_dict({k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")})

    def __call__(self, rgb: Tensor, prompt_embeds, c2w: Tensor, global_step: int | None = None) -> dict[str, Tensor]:
        """`{"loss_uniinstruct", "loss_lora", "loss_disc", "loss_gan" (logged), "r", "t", …}`."""
        if global_step is not None:
            self.update_step(global_step)
        noised = self.noised_render(rgb)
        with frozen(self.head.parameters()):
            d_teacher, d_fake, features = self.networks(noised, prompt_embeds, c2w)
            logit = self.head(features)
        # `input_gradient` weighs what flows back through the networks' inputs into the Uni-Instruct loss (scaled
        # at their outputs: the same by the chain rule); the GAN term's gradient through the discriminator's
        # features is the GAN's own and keeps its full weight (scaling x_t itself had silenced it at 0).
        weight = scheduled(self.cfg.input_gradient, self.global_step)
        d_teacher, d_fake, ratio_logit = scale_gradient((d_teacher, d_fake, logit), weight)
        out = self.outputs(self.generator_loss(noised, d_teacher, d_fake, ratio_logit, gan_logit=logit), noised)
        out["loss_disc"], disc_stats = self.disc_loss(features.detach(), noised.t, prompt_embeds, c2w)
        out["loss_lora"] = self.lora_loss(noised.x0, prompt_embeds, c2w)
        return {**out, **disc_stats}

    def networks(self, noised: Noised, prompt_embeds, c2w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """D_q^cfg and D_p at x_t (gradients through their inputs only) and the discriminator's features."""
        unet = self.teacher.unet
        with capture_mid_block(unet) as teacher_features:
            d_teacher = self.teacher_denoise(noised, prompt_embeds)
        with capture_mid_block(unet) as fake_features:
            d_fake = self.fake_denoise(noised, prompt_embeds, c2w)
        if self.cfg.discriminator == "fake":
            return d_teacher, d_fake, fake_features[0]
        return d_teacher, d_fake, teacher_features[0][: noised.x0.shape[0]]  # the conditional half of the CFG batch

    @torch.no_grad()
    def real_features(self, t: Tensor, prompt_embeds, c2w: Tensor) -> Tensor:
        """Mid-block features of noised real images at the renders' t (the UNet's encoder only)."""
        reals = self.pool.sample(prompt_embeds.prompts, getattr(prompt_embeds, "directions", None))
        noised = self.noise(self.teacher.encode_images(reals), t)
        if self.cfg.discriminator == "fake":
            camera = self.fake.camera_condition(c2w)
            return self.fake.encoder_features(noised.x_t, t, self.plain_text(prompt_embeds), camera)
        return self.teacher.encoder_features(noised.x_t, t, self.teacher_text(prompt_embeds)[0])

    def disc_loss(self, fake_features: Tensor, t: Tensor, prompt_embeds, c2w: Tensor) -> tuple[Tensor, dict]:
        """BCE of the head on real (→ 1) vs detached render (→ 0) features at the same t."""
        logit_real = self.head(self.real_features(t, prompt_embeds, c2w))
        return losses.gan_discriminator(logit_real, self.head(fake_features))
