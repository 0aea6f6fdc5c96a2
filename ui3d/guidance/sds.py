"""Score Distillation Sampling (DreamFusion, Poole et al. 2022, Eq. 3): the teacher's CFG denoiser pulls the
render, gradient w(t)(ε̂_q^cfg − ε) on x_0; the loss is `ui3d.distill.losses.sds`."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ui3d.guidance.base import BaseGuidance
from ui3d.registry import register


@register("sds")
class SDSGuidance(BaseGuidance):
    """threestudio's `stable-diffusion-guidance` on any `DiffusionTeacher` (latent or pixel space)."""

    method = "sds"

    @dataclass
    class Config(BaseGuidance.Config):
        guidance_scale: float = 100.0
        """Classifier-free guidance scale (DreamFusion uses 100)."""
        weighting: str = "sds"
        """Per-time weight; `sds` is w(t) = sigma_t² (threestudio's 1 − ᾱ_t)."""

    def __call__(self, rgb: Tensor, prompt_embeds, c2w: Tensor | None = None,
                 global_step: int | None = None) -> dict[str, Tensor]:
        """`{"loss_sds", "grad_norm", "t", …}` for renders `rgb` [B, H, W, 3] in [0, 1]."""
        if global_step is not None:
            self.update_step(global_step)
        noised = self.noised_render(rgb)
        with torch.no_grad():
            d_teacher = self.teacher_denoise(noised, prompt_embeds)
        return self.outputs(self.generator_loss(noised, d_teacher), noised)
