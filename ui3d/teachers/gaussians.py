"""Analytic teachers: isotropic Gaussian mixtures in R^d, noised in closed form (x_t = alpha x_0 + sigma eps).

Everything is exact — log-density, score, denoiser, and so the density ratio between two mixtures — which makes
them the oracle for the losses (gradient tests) and for 2D distillation (the discriminator's r against the truth).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class GaussianMixture:
    """p_0 = Σ_k w_k N(m_k, v_k I); weights [K], means [K, d], variances [K]."""

    weights: Tensor
    means: Tensor
    variances: Tensor

    @classmethod
    def gaussian(cls, mean: Tensor, std: Tensor) -> "GaussianMixture":
        """One component N(mean, std² I); mean [d] and std [] may carry gradients (a student p_θ)."""
        return cls(torch.ones(1, dtype=mean.dtype), mean[None], (std**2).reshape(1))

    @classmethod
    def ring(cls, n_modes: int = 8, radius: float = 2.0, std: float = 0.1, weights: Tensor | None = None):
        """`n_modes` modes on a circle in R², equal or given weights."""
        angle = torch.arange(n_modes, dtype=torch.float64) * 2 * math.pi / n_modes
        w = torch.full((n_modes,), 1.0 / n_modes, dtype=torch.float64) if weights is None else weights / weights.sum()
        means = radius * torch.stack([angle.cos(), angle.sin()], 1)
        return cls(w, means, torch.full((n_modes,), std**2, dtype=torch.float64))

    def noised(self, alpha_t: float | Tensor, sigma_t: float | Tensor) -> "GaussianMixture":
        """The marginal at time t: N(alpha m_k, (alpha² v_k + sigma²) I)."""
        return GaussianMixture(self.weights, alpha_t * self.means, alpha_t**2 * self.variances + sigma_t**2)

    def _component_log_probs(self, x: Tensor) -> Tensor:  # [N, K]
        d = x.shape[-1]
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        return torch.log(self.weights) - 0.5 * sq / self.variances - 0.5 * d * torch.log(2 * math.pi * self.variances)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) for x [N, d]."""
        return torch.logsumexp(self._component_log_probs(x), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """∇_x log p(x) = Σ_k γ_k(x) (m_k − x) / v_k."""
        gamma = torch.softmax(self._component_log_probs(x), dim=1)
        return (gamma[..., None] * (self.means[None] - x[:, None, :]) / self.variances[None, :, None]).sum(1)

    def denoiser(self, x_t: Tensor, alpha_t, sigma_t) -> Tensor:
        """E[x_0 | x_t] = (x_t + sigma² ∇log p_t(x_t)) / alpha (Tweedie), for the clean mixture `self`."""
        return (x_t + sigma_t**2 * self.noised(alpha_t, sigma_t).score(x_t)) / alpha_t

    def _marginal_component_log_probs(self, x: Tensor, alpha_t: Tensor, sigma_t: Tensor) -> Tensor:  # [N, K]
        alpha_t, sigma_t = alpha_t.reshape(-1, 1).to(x), sigma_t.reshape(-1, 1).to(x)
        var = alpha_t**2 * self.variances.to(x) + sigma_t**2  # [N, K]
        sq = ((x[:, None, :] - alpha_t[..., None] * self.means.to(x)[None]) ** 2).sum(-1)
        return torch.log(self.weights.to(x)) - 0.5 * sq / var - 0.5 * x.shape[-1] * torch.log(2 * math.pi * var)

    def marginal_log_prob(self, x: Tensor, alpha_t: Tensor, sigma_t: Tensor) -> Tensor:
        """log p_t(x) of the noised mixture, with a time per sample: x [N, d], alpha_t and sigma_t [N]."""
        return torch.logsumexp(self._marginal_component_log_probs(x, alpha_t, sigma_t), dim=1)

    def marginal_denoiser(self, x: Tensor, alpha_t: Tensor, sigma_t: Tensor) -> Tensor:
        """E[x_0 | x_t] with a time per sample (Tweedie, per component: posterior-weighted component means)."""
        gamma = torch.softmax(self._marginal_component_log_probs(x, alpha_t, sigma_t), dim=1)  # [N, K]
        a, s = alpha_t.reshape(-1, 1, 1).to(x), sigma_t.reshape(-1, 1, 1).to(x)
        v = self.variances.to(x)[None, :, None]
        m = self.means.to(x)[None]
        post = m + a * v / (a**2 * v + s**2) * (x[:, None, :] - a * m)  # E[x_0 | x_t, k]
        return (gamma[..., None] * post).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples [n, d]."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.variances[k].sqrt()[:, None] * eps
