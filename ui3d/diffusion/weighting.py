"""Per-time weights of the diffusion objectives: the truncated-SNR weight of a denoiser's own training (teachers,
fake scores) and the paper's ½g²(t)/p(t) time weight of the distillation loss (Uni-Instruct Eq. 3.5)."""
from __future__ import annotations

from torch import Tensor

from ui3d.diffusion.denoiser import PREDICTION_TYPES


def truncated_snr_weight(snr: Tensor, prediction_type: str = "sample", cap: float = 5.0) -> Tensor:
    """Per-sample weight of a denoising MSE taken in the network's `prediction_type` space, snr = alpha_t²/sigma_t².

    On the D error it is min(snr, cap) + 1 (truncated SNR+1, Salimans & Ho 2022) for `sample` and `v_prediction`,
    min(snr, cap) (min-SNR-γ, Hang et al. 2023) for `epsilon`: plain at high noise, capped at low noise. Divided
    here by the target's own scale, ‖v err‖² = (snr + 1) ‖D err‖² and ‖ε err‖² = snr ‖D err‖².
    """
    clamped = snr.clamp(max=cap)
    if prediction_type == "sample":
        return clamped + 1
    if prediction_type == "v_prediction":
        return (clamped + 1) / (snr + 1)
    if prediction_type == "epsilon":
        return clamped / snr
    raise ValueError(f"unknown prediction_type '{prediction_type}'; expected one of {PREDICTION_TYPES}")


def paper_time_weight(schedule, t: Tensor, min_frac: float, max_frac: float, like: Tensor | None = None) -> Tensor:
    """½ g²(t) / p(t) for integer timesteps t drawn uniformly by `schedule.sample_t(n, min_frac, max_frac)`, the
    `paper` weighting's time factor (g² on `like`'s device and dtype when given)."""
    n = schedule.num_train_timesteps
    span = max(int(max_frac * n) - int(min_frac * n), 1)
    g2 = schedule.g2(t) if like is None else schedule.g2(t).to(like)
    return 0.5 * g2 * span
