"""Samplers in the denoiser convention (k-diffusion style: free functions, same leading signature)."""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

from ui3d.diffusion.schedules import VPDiscrete

Denoiser = Callable[[Tensor, Tensor], Tensor]
GuidedDenoiser = Callable[[Tensor, Tensor, Any, Any], Tensor]
"""D(x_t, t, cond, uncond): a teacher's classifier-free guided denoiser at a fixed guidance scale."""
Conditions = Callable[[int, torch.Generator], tuple[Any, Any, list]]
"""(cond, uncond, labels) for n samples, drawn from the generator (a teacher's `conditions`)."""


@torch.no_grad()
def ddim(denoise: Denoiser, noise: Tensor, schedule: VPDiscrete, steps: int = 50) -> Tensor:
    """Deterministic DDIM (Song et al. 2021, eta = 0): x_s = alpha_s D + sigma_s (x_t − alpha_t D) / sigma_t,
    from `noise` down to the clean D of the final step at t = 0.

    Timesteps are "leading"-spaced as diffusers' DDIM (0, T/steps, …, T − T/steps): the very last training
    timesteps of a cosine schedule have alpha ≈ 1e-5…1e-9, where D = (x − sigma eps)/alpha is noise."""
    stride = schedule.num_train_timesteps // steps
    ts = (torch.arange(steps) * stride).flip(0)
    alpha, sigma = schedule.alpha_sigma(ts[:1])
    x = noise * (alpha**2 + sigma**2).sqrt()
    for i, t in enumerate(ts):
        d = denoise(x, t.expand(x.shape[0]))
        if i == steps - 1:
            return d
        alpha_t, sigma_t = schedule.alpha_sigma(t)
        alpha_s, sigma_s = schedule.alpha_sigma(ts[i + 1])
        x = alpha_s * d + sigma_s * (x - alpha_t * d) / sigma_t
    return x


@torch.no_grad()
def sample_ddim(denoise: GuidedDenoiser, conditions: Conditions, shape: tuple[int, ...], n: int,
                schedule: VPDiscrete, steps: int, generator: torch.Generator, batch: int,
                device: Optional[torch.device] = None,
                finish: Optional[Callable[[Tensor], Tensor]] = None) -> tuple[Tensor, list[tuple[Any, Any, list]]]:
    """n teacher samples by `steps`-step DDIM, `batch` at a time: each batch draws its conditions, then its noise
    [m, *shape] (on the CPU `generator`, moved to `device`), from `generator`, and is denoised by `denoise` with
    them; `finish` maps each batch's x_0 (e.g. decoding to images). The samples, and each batch's conditions."""
    out, drawn = [], []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        cond, uncond, labels = conditions(m, generator)
        noise = torch.randn(m, *shape, generator=generator)
        noise = noise.to(device) if device is not None else noise
        x0 = ddim(lambda x, t: denoise(x, t, cond, uncond), noise, schedule, steps)
        out.append(x0 if finish is None else finish(x0))
        drawn.append((cond, uncond, labels))
    return torch.cat(out), drawn
