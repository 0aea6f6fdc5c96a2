"""Variational Score Distillation (ProlificDreamer, Wang et al. 2023, Eq. 9): gradient w(t)(ε̂_q^cfg − ε̂_p) on
x_0, with ε̂_p a LoRA fake score of the renders conditioned on the camera (`fake_score.FakeScore`) trained
alongside (Algorithm 1). The loss is `ui3d.distill.losses.vsd`, the fake's training loss `losses.dsm`."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ui3d.guidance.fake_score import FakeScoreGuidance
from ui3d.registry import register


@register("vsd")
class VSDGuidance(FakeScoreGuidance):
    """threestudio's `stable-diffusion-vsd-guidance` on any `DiffusionTeacher`, LoRA sharing the teacher UNet."""

    method = "vsd"

    @dataclass
    class Config(FakeScoreGuidance.Config):
        weighting: str = "sds"
        """Per-time weight; `sds` is w(t) = sigma_t² (threestudio's 1 − ᾱ_t)."""

    def __call__(self, rgb: Tensor, prompt_embeds, c2w: Tensor, global_step: int | None = None) -> dict[str, Tensor]:
        """`{"loss_vsd", "loss_lora", "grad_norm", "t", …}`; `loss_lora` trains only the fake score."""
        if global_step is not None:
            self.update_step(global_step)
        noised = self.noised_render(rgb)
        with torch.no_grad():
            d_teacher = self.teacher_denoise(noised, prompt_embeds)
            d_fake = self.fake_denoise(noised, prompt_embeds, c2w)
        out = self.outputs(self.generator_loss(noised, d_teacher, d_fake), noised)
        out["loss_lora"] = self.lora_loss(noised.x0, prompt_embeds, c2w)
        return out
