"""Regularisers of volume renders, as threestudio's DreamFusion/Magic3D systems compute them
(`loss_sparsity`, `loss_opaque`, `loss_orient`); each returns a scalar."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sparsity(opacity: Tensor, eps: float = 0.01) -> Tensor:
    """Mean of √(o² + eps): a smooth L1 pull of the opacity towards 0 (threestudio's `loss_sparsity`)."""
    return (opacity**2 + eps).sqrt().mean()


def opacity_entropy(opacity: Tensor, clamp: float = 1e-3) -> Tensor:
    """Binary entropy −o log o − (1 − o) log(1 − o) of the clamped opacity, averaged: pushes every pixel to be
    fully empty or fully opaque (threestudio's `loss_opaque`, a binary cross-entropy of o with itself)."""
    o = opacity.clamp(clamp, 1.0 - clamp)
    return F.binary_cross_entropy(o, o)


def orientation(weights: Tensor, normals: Tensor, rays_d: Tensor, opacity: Tensor | None = None,
                detach_weights: bool = True) -> Tensor:
    """Ref-NeRF's orientation loss Σ_i w_i · max(0, n_i·d)²: penalises visible normals facing away from the
    camera (d points from the camera into the scene). weights [..., 1], normals [..., 3] per sample; rays_d per
    sample [..., 3] or per ray (one dim fewer, broadcast over samples). The total is divided by the number of
    rays with opacity > 0 when `opacity` is given (threestudio's `loss_orient`), else by the number of rays
    (batched [..., N, 1] weights). threestudio stops the gradient through the weights (`detach_weights`)."""
    if rays_d.dim() == normals.dim() - 1:
        rays_d = rays_d.unsqueeze(-2)
    w = weights.detach() if detach_weights else weights
    total = (w[..., 0] * (normals * rays_d).sum(-1).clamp(min=0.0) ** 2).sum()
    count = (opacity > 0).sum() if opacity is not None else torch.tensor(weights.shape[:-2].numel())
    return total / count.clamp(min=1)
