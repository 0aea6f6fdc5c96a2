"""Noise schedules: x_t = alpha_t x_0 + sigma_t eps.

`VPDiscrete` is DDPM/Stable Diffusion's (integer timesteps, `alphas_cumprod`), `VPContinuous` is Song et al.'s
linear-beta VP SDE, `EDM` is Karras et al.'s (alpha = 1, sigma = t). Each gives (alpha_t, sigma_t), the diffusion
coefficient g²(t) of the paper's ½g²(t) weighting, and time sampling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


class VPDiscrete:
    """DDPM's discrete VP schedule: alpha_t = sqrt(alphas_cumprod[t]), sigma_t = sqrt(1 - alphas_cumprod[t])."""

    def __init__(self, alphas_cumprod: Tensor):
        self.alphas_cumprod = alphas_cumprod.double()
        self.num_train_timesteps = len(alphas_cumprod)

    @classmethod
    def scaled_linear(cls, n: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> "VPDiscrete":
        """Stable Diffusion's schedule."""
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
        return cls(torch.cumprod(1 - betas, 0))

    @classmethod
    def from_scheduler(cls, scheduler) -> "VPDiscrete":
        """From any diffusers scheduler that has `alphas_cumprod` (DDPM, DDIM, PNDM, ...)."""
        return cls(torch.as_tensor(scheduler.alphas_cumprod))

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        ac = self.alphas_cumprod.to(t.device)[t.long()]
        return ac.sqrt().float(), (1 - ac).sqrt().float()

    def g2(self, t: Tensor) -> Tensor:
        """beta_t = 1 - alphas_cumprod[t] / alphas_cumprod[t-1], the discrete g²."""
        ac = self.alphas_cumprod.to(t.device)
        prev = torch.where(t > 0, ac[(t.long() - 1).clamp(min=0)], torch.ones_like(ac[t.long()]))
        return (1 - ac[t.long()] / prev).float()

    def sample_t(self, n: int, min_frac: float, max_frac: float, generator=None, device=None) -> Tensor:
        """Integer timesteps uniform in [min_frac, max_frac] x num_train_timesteps (threestudio's min/max_step)."""
        lo = int(min_frac * self.num_train_timesteps)
        hi = max(int(max_frac * self.num_train_timesteps), lo + 1)
        return torch.randint(lo, hi, (n,), generator=generator, device=device)


@dataclass
class VPContinuous:
    """Song et al.'s VP SDE, t in (0, 1]: beta(t) = beta_min + t (beta_max - beta_min)."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        log_alpha2 = -0.5 * t**2 * (self.beta_max - self.beta_min) - t * self.beta_min
        return torch.exp(0.5 * log_alpha2), torch.sqrt(-torch.expm1(log_alpha2))

    def g2(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def sample_t(self, n: int, min_frac: float, max_frac: float, generator=None, device=None) -> Tensor:
        return min_frac + (max_frac - min_frac) * torch.rand(n, generator=generator, device=device)


@dataclass
class EDM:
    """Karras et al. (2022): alpha = 1, sigma = t; log-normal training times, g²(t) = d sigma²/dt = 2t."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.ones_like(t), t

    def g2(self, t: Tensor) -> Tensor:
        return 2 * t

    def sample_t(self, n: int, min_frac: float, max_frac: float, generator=None, device=None) -> Tensor:
        """Sigmas log-uniform between the fractions of [sigma_min, sigma_max] in log space."""
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        u = min_frac + (max_frac - min_frac) * torch.rand(n, generator=generator, device=device)
        return torch.exp(lo + u * (hi - lo))

    def sample_training_sigma(self, n: int, generator=None, device=None) -> Tensor:
        """EDM's log-normal training distribution of sigma."""
        return torch.exp(self.p_mean + self.p_std * torch.randn(n, generator=generator, device=device))

    def karras_sigmas(self, n: int, rho: float = 7.0) -> Tensor:
        """The sampler's sigma sequence (Eq. 5 of EDM), ending with 0."""
        ramp = torch.linspace(0, 1, n, dtype=torch.float64)
        inv_rho = (self.sigma_max ** (1 / rho), self.sigma_min ** (1 / rho))
        sigmas = (inv_rho[0] + ramp * (inv_rho[1] - inv_rho[0])) ** rho
        return torch.cat([sigmas, sigmas.new_zeros(1)]).float()
