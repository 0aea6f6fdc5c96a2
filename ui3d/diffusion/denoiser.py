"""One denoiser convention inside: D(x_t, t) ≈ E[x_0 | x_t]. Networks' eps-, v- and x0-predictions are converted
here, at the boundary (as k-diffusion does), and everything else speaks in D and scores."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def expand_like(value: Tensor | float, x: Tensor) -> Tensor | float:
    """Per-sample [B] values reshaped to broadcast against x [B, ...]."""
    if isinstance(value, Tensor) and value.dim() == 1 and x.dim() > 1:
        return value.reshape(-1, *([1] * (x.dim() - 1)))
    return value


def to_denoised(output: Tensor, x_t: Tensor, alpha_t, sigma_t, prediction_type: str) -> Tensor:
    """D from a network output: eps -> (x_t - sigma eps)/alpha; v = alpha eps - sigma x0 -> x0; sample -> itself."""
    alpha_t, sigma_t = expand_like(alpha_t, x_t), expand_like(sigma_t, x_t)
    if prediction_type == "epsilon":
        return (x_t - sigma_t * output) / alpha_t
    if prediction_type == "v_prediction":
        return (alpha_t * x_t - sigma_t * output) / (alpha_t**2 + sigma_t**2)
    if prediction_type == "sample":
        return output
    raise ValueError(f"unknown prediction_type '{prediction_type}'; expected one of {PREDICTION_TYPES}")


def from_denoised(d: Tensor, x_t: Tensor, alpha_t, sigma_t, prediction_type: str) -> Tensor:
    """The network output that `to_denoised` maps to D (the inverse conversion)."""
    alpha_t, sigma_t = expand_like(alpha_t, x_t), expand_like(sigma_t, x_t)
    eps = (x_t - alpha_t * d) / sigma_t
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "v_prediction":
        return alpha_t * eps - sigma_t * d
    if prediction_type == "sample":
        return d
    raise ValueError(f"unknown prediction_type '{prediction_type}'; expected one of {PREDICTION_TYPES}")


def score(d: Tensor, x_t: Tensor, alpha_t, sigma_t) -> Tensor:
    """s = ∇ log p_t(x_t) = (alpha_t D - x_t) / sigma_t² (Tweedie)."""
    alpha_t, sigma_t = expand_like(alpha_t, x_t), expand_like(sigma_t, x_t)
    return (alpha_t * d - x_t) / sigma_t**2


def classifier_free_guidance(d_cond: Tensor, d_uncond: Tensor, guidance_scale: float) -> Tensor:
    """Classifier-free guidance on the teacher: D_uncond + w (D_cond - D_uncond)."""
    return d_uncond + guidance_scale * (d_cond - d_uncond)


def guided_denoise(denoise: Callable[[Tensor, Tensor, Any], Tensor], x_t: Tensor, t: Tensor, cond, uncond,
                   guidance_scale: float) -> Tensor:
    """CFG for any conditional denoiser `denoise(x_t, t, cond)` (text embeddings or class labels): both branches
    in one batched call, conditional first; `uncond=None` is the conditional denoiser alone."""
    if uncond is None:
        return denoise(x_t, t, cond)
    t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
    d_cond, d_uncond = denoise(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, uncond])).chunk(2)
    return classifier_free_guidance(d_cond, d_uncond, guidance_scale)


def edm_preconditioning(sigma: Tensor, sigma_data: float = 0.5) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM's D = c_skip x + c_out F(c_in x, c_noise) coefficients (Karras et al. 2022, Table 1)."""
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / (sigma**2 + sigma_data**2).sqrt()
    c_in = 1 / (sigma**2 + sigma_data**2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise
