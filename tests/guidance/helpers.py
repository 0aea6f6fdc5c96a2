"""Helpers of the guidance tests: prompt embeddings as the prompt processor hands them, guidance builders, and an
analytic teacher whose denoiser is a known image."""
from __future__ import annotations

from types import SimpleNamespace

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel, UNet2DConditionOutput

from tests.tiny_models import tiny_embedded_config
from ui3d.diffusion.denoiser import from_denoised
from ui3d.guidance import sds, uniinstruct, vsd
from ui3d.registry import find
from ui3d.teachers.embedded import model as embedded
from ui3d.teachers.teacher import DiffusionTeacher

REGISTERED = (sds, vsd, uniinstruct)
"""Imported so that `find` sees them without importing the whole package."""
PROMPTS = ["a red vase, side view", "a vase, front view"]


def prompt_embeds(teacher, prompts=PROMPTS) -> SimpleNamespace:
    """What the prompt processor hands a guidance: view-dependent cond, uncond, prompts, directions."""
    return SimpleNamespace(cond=teacher.encode_text(prompts), uncond=teacher.encode_text([""] * len(prompts)),
                           prompts=list(prompts), directions=[p.rsplit(", ", 1)[1].split()[0] for p in prompts])


def make_guidance(name: str, teacher, cache_dir, **overrides):
    """A registered guidance with a tiny real pool (2 samples, 2 DDIM steps)."""
    cls = find(name)
    if name == "uniinstruct":
        overrides = {"real_pool_size": 2, "real_sampling_steps": 2, "real_pool_cache_dir": str(cache_dir),
                     **overrides}
    return cls(cls.Config(**overrides), teacher)


def cameras(n: int = 2) -> torch.Tensor:
    """Distinct camera-to-world matrices [n, 4, 4]."""
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, :3, 3] = torch.randn(n, 3)
    return c2w


class TargetUNet(UNet2DConditionModel):
    """A tiny real UNet (so hooks, LoRA and the class embedding all run) whose output is replaced by the
    prediction (of the scheduler's `prediction_type`) of a known denoiser: D = `target` for the teacher,
    D = `fake_target` in fake-score calls (class labels given), whatever x_t."""

    target: torch.Tensor
    fake_target: torch.Tensor
    alphas_cumprod: torch.Tensor
    prediction_type: str

    def forward(self, sample, timestep, encoder_hidden_states, class_labels=None, **kwargs):
        out = super().forward(sample, timestep, encoder_hidden_states, class_labels=class_labels, **kwargs)
        ac = self.alphas_cumprod[timestep.long()].float().view(-1, 1, 1, 1)
        target = self.target if class_labels is None else self.fake_target
        prediction = from_denoised(target, sample, ac.sqrt(), (1 - ac).sqrt(), self.prediction_type)
        return UNet2DConditionOutput(sample=prediction + 0 * out.sample)


def analytic_teacher() -> tuple[DiffusionTeacher, TargetUNet]:
    torch.manual_seed(0)
    cfg, tok = tiny_embedded_config(), embedded.build_tokenizer()
    scheduler = embedded.build_scheduler(cfg)
    unet = TargetUNet.from_config(embedded.build_unet(cfg).config)
    unet.alphas_cumprod, unet.prediction_type = scheduler.alphas_cumprod, scheduler.config.prediction_type
    teacher = DiffusionTeacher(unet, scheduler, embedded.build_text_encoder(tok, cfg), tok, name="analytic")
    return teacher.requires_grad_(False).eval(), unet


def to_x0(rgb: torch.Tensor) -> torch.Tensor:
    return rgb.permute(0, 3, 1, 2) * 2 - 1
