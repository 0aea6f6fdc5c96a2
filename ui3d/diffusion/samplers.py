"""Samplers in the denoiser convention (k-diffusion style: free functions, same leading signature)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ui3d.diffusion.schedules import VPDiscrete

Denoiser = Callable[[Tensor, Tensor], Tensor]


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
