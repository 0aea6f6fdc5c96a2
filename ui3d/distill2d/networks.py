"""Trainable networks of 2D distillation, all in the one denoiser convention `net(x_t, t, cond) -> D`.

`UNetDenoiser` wraps any diffusers UNet (unconditional or class-conditional `UNet2DModel`, text-conditional
`UNet2DConditionModel`) with its noise schedule and prediction type; `MLPDenoiser` is the same thing for vectors
(Gaussian-mixture teachers). `OneStepGenerator` is Algorithm 1's G_θ(z) = D_θ(σ_init z, σ_init) on either.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ui3d.diffusion.denoiser import to_denoised
from ui3d.diffusion.unet_encoder import mid_block_features
from ui3d.distill.discriminator import build_head, mid_block_channels


class _Scheduled(nn.Module):
    """Holds a discrete VP schedule as a buffer, so that copies and checkpoints carry it."""

    def __init__(self, alphas_cumprod: Tensor):
        super().__init__()
        self.register_buffer("alphas_cumprod", alphas_cumprod.float().clone(), persistent=False)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        ac = self.alphas_cumprod[t.long()]
        return ac.sqrt(), (1 - ac).sqrt()


def time_features(t: Tensor, n_timesteps: int, dim: int = 32) -> Tensor:
    """Sinusoidal features of t / n_timesteps ∈ [0, 1]: [B, dim]."""
    frac = t.float()[:, None] / n_timesteps
    freqs = torch.exp(torch.linspace(0, math.log(1000.0), dim // 2, device=t.device))[None]
    return torch.cat([torch.sin(frac * freqs), torch.cos(frac * freqs)], 1)


class MLPDenoiser(_Scheduled):
    """D(x_t, t) for vectors in R^d, v-parameterised: D = alpha x_t − sigma F(x_t, t) (alpha² + sigma² = 1), so
    D → x_t at low noise and D = −F (a direct x_0 guess) at high noise."""

    def __init__(self, dim: int, alphas_cumprod: Tensor, hidden: int = 256, depth: int = 3, time_dim: int = 32):
        super().__init__(alphas_cumprod)
        layers, width = [], dim + time_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))
        self.time_dim = time_dim
        self.sizes = {"dim": dim, "hidden": hidden, "depth": depth, "time_dim": time_dim}
        """The constructor's sizes (what rebuilds this network around saved weights)."""

    def forward(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        alpha, sigma = self.alpha_sigma(t)
        feats = time_features(t, len(self.alphas_cumprod), self.time_dim)
        return alpha[:, None] * x_t - sigma[:, None] * self.net(torch.cat([x_t, feats], 1))


class MLPDiscriminator(nn.Module):
    """Density-ratio discriminator for vectors: logit(x_t, t), output layer zero-initialised (r = 1 at start)."""

    def __init__(self, dim: int, n_timesteps: int, hidden: int = 128, time_dim: int = 32):
        super().__init__()
        self.n_timesteps, self.time_dim = n_timesteps, time_dim
        self.net = nn.Sequential(nn.Linear(dim + time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        return self.net(torch.cat([x_t, time_features(t, self.n_timesteps, self.time_dim)], 1))[:, 0]


class UNetDenoiser(_Scheduled):
    """D(x_t, t, cond) from a diffusers UNet: `cond` is None, class labels [B] (long) or text embeddings
    [B, L, C]; the output is converted by the scheduler's prediction type."""

    def __init__(self, unet: nn.Module, alphas_cumprod: Tensor, prediction_type: str):
        super().__init__(alphas_cumprod)
        self.unet, self.prediction_type = unet, prediction_type

    @staticmethod
    def _condition(cond) -> dict:
        """`cond` as the UNet's keyword: text embeddings (floating) or class labels."""
        if cond is None:
            return {}
        return {"encoder_hidden_states" if cond.is_floating_point() else "class_labels": cond}

    def forward(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        out = self.unet(x_t, t, **self._condition(cond)).sample
        alpha, sigma = self.alpha_sigma(t)
        return to_denoised(out, x_t, alpha, sigma, self.prediction_type)

    def encoder_features(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        """The UNet's mid-block output for the `forward` call with these inputs (the decoder is not run)."""
        return mid_block_features(self.unet, x_t, t, **self._condition(cond))


class OneStepGenerator(nn.Module):
    """G_θ(z, c) = D_θ(x, t*, c) with x = sigma_{t*} z and t* the timestep whose sigma/alpha is closest to
    `sigma_init` (SiD's σ_init = 2.5 written for a VP network: the EDM input σ_init z scaled by alpha_{t*})."""

    def __init__(self, denoiser: _Scheduled, sigma_init: float = 2.5):
        super().__init__()
        self.denoiser = denoiser
        ac = denoiser.alphas_cumprod
        t_star = int(torch.argmin(((1 - ac) / ac).sqrt().sub(sigma_init).abs()))
        self.register_buffer("t_star", torch.tensor(t_star), persistent=False)

    def forward(self, z: Tensor, cond=None) -> Tensor:
        t = self.t_star.expand(z.shape[0])
        _, sigma = self.denoiser.alpha_sigma(t)
        return self.denoiser(sigma.reshape(-1, *[1] * (z.dim() - 1)) * z, t, cond)


class FeatureDiscriminator(nn.Module):
    """A head on the mid-block features of a UNet denoiser (the teacher's by default, or the fake score's), or
    the parameter-free channel mean; only the UNet's encoder runs."""

    def __init__(self, kind: str, source: UNetDenoiser):
        super().__init__()
        self.kind, self.head = kind, build_head(kind, mid_block_channels(source.unet))
        self._source = [source]  # not a submodule: the teacher's or fake score's weights are not the head's

    def forward(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        return self.head(self._source[0].encoder_features(x_t, t, cond))

