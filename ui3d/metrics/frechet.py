"""Fréchet distance between Gaussians fitted to two feature sets (the FID formula, any feature extractor).

The cross term tr((Σ_a Σ_b)^½) is computed as the nuclear norm ‖F_aᵀ F_b‖_* of square-root factors Σ = F Fᵀ
(the singular values of F_aᵀ F_b are the square roots of the eigenvalues of Σ_a Σ_b). With fewer samples than
dimensions F is the centred data itself, so 2048-d Inception features cost an N×N SVD instead of a 2048² `sqrtm`
(≈30 s at one thread); the result is exact, with no ε-regularisation of singular covariances.
"""
from __future__ import annotations

import numpy as np
from torch import Tensor


def _sqrt_factor(x: np.ndarray) -> np.ndarray:
    """F [D, r] with F Fᵀ = cov(x) for x [N, D]: the centred data when N ≤ D, else the symmetric root (eigh)."""
    centred = x - x.mean(0)
    if x.shape[0] <= x.shape[1]:
        return centred.T / np.sqrt(x.shape[0] - 1)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    return evecs * np.sqrt(np.clip(evals, 0.0, None))


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) for features [N, D] (Heusel et al. 2017)."""
    a, b = (np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64) for x in (a, b))
    fa, fb = _sqrt_factor(a), _sqrt_factor(b)
    cross = np.linalg.svd(fa.T @ fb, compute_uv=False).sum()
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    return float(mean_term + (fa**2).sum() + (fb**2).sum() - 2 * cross)
