"""Sample-quality metrics against an analytic Gaussian mixture (2D one-step distillation), and k-NN precision/recall.

Every number comes with what exact samples would score at the same n: `mmd_floor` for the MMD, and the mode
statistics of exact samples are ≈ K covered, TV ≈ O(√(K/n)), off-mode ≈ 1 − coverage(k) (0.27% for k = 3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import scipy.stats
import torch
from torch import Tensor

from ui3d.teachers.gaussians import GaussianMixture

DEFAULT_SCALES = (0.1, 0.3, 1.0)
"""Default RBF bandwidths as multiples of the data's per-coordinate std: mode-sized to layout-sized."""


@dataclass(frozen=True)
class MMDResult:
    """Unbiased squared MMD per bandwidth and their sum (the MMD of the summed kernel)."""

    bandwidths: tuple[float, ...]
    values: tuple[float, ...]
    total: float


def _as_float(x: Tensor) -> Tensor:
    return x.detach().to(torch.promote_types(x.dtype, torch.float32))


def _kernel_sums(a: Tensor, b: Tensor, bandwidths: Tensor, chunk: int = 2048) -> Tensor:
    """Σ_ij exp(−‖a_i − b_j‖² / 2h²) for each bandwidth h, row-chunked to bound memory."""
    total = torch.zeros(len(bandwidths), dtype=a.dtype)
    for i in range(0, len(a), chunk):
        sq = torch.cdist(a[i : i + chunk], b).square()
        total += torch.exp(-sq[None] / (2 * bandwidths[:, None, None] ** 2)).sum((1, 2))
    return total


def data_std(x: Tensor) -> float:
    """Per-coordinate std of samples x [N, d], pooled over coordinates: √(mean_j Var x_j)."""
    return float(_as_float(x).var(0).mean().sqrt())


def mixture_std(mixture: GaussianMixture) -> float:
    """The mixture's exact per-coordinate std: √(Σ_k w_k (v_k + ‖m_k − μ‖²/d))."""
    w, m = mixture.weights, mixture.means
    spread = ((m - (w[:, None] * m).sum(0)) ** 2).sum(1) / m.shape[1]
    return float((w * (mixture.variances + spread)).sum().sqrt())


def mmd(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] | None = None) -> MMDResult:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) between x [N, d] and reference y [M, d] with RBF kernels.

    Bandwidths default to `DEFAULT_SCALES` × the std of the reference y, so a student is scored on fixed scales.
    Unbiased: exact samples give values scattered around 0 (negative values happen); compare with `mmd_floor`.
    """
    x, y = _as_float(x), _as_float(y).to(_as_float(x).dtype)
    if bandwidths is None:
        bandwidths = tuple(s * data_std(y) for s in DEFAULT_SCALES)
    h = torch.tensor(bandwidths, dtype=x.dtype)
    n, m = len(x), len(y)
    kxx = (_kernel_sums(x, x, h) - n) / (n * (n - 1))  # the diagonal k(x_i, x_i) = 1 is left out
    kyy = (_kernel_sums(y, y, h) - m) / (m * (m - 1))
    kxy = _kernel_sums(x, y, h) / (n * m)
    values = kxx + kyy - 2 * kxy
    return MMDResult(tuple(float(b) for b in bandwidths), tuple(values.tolist()), float(values.sum()))


def mmd_floor(mixture: GaussianMixture, n: int, seeds=(0, 1, 2), bandwidths=None) -> MMDResult:
    """The noise floor of `mmd` at n: root-mean-square over seeds of MMD² between two independent exact n-sets.

    The unbiased MMD² of exact samples has mean 0, so its typical size (RMS) is the floor: a student within ~3×
    the floor is indistinguishable from exact samples at this n (3 seeds give a rough floor; pass more to firm it).
    Bandwidths default to the mixture's own scales.
    """
    if bandwidths is None:
        bandwidths = tuple(s * mixture_std(mixture) for s in DEFAULT_SCALES)
    runs = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        runs.append(torch.tensor(mmd(mixture.sample(n, g), mixture.sample(n, g), bandwidths).values))
    per_bw = torch.stack(runs).square().mean(0).sqrt()
    totals = torch.stack([r.sum() for r in runs])
    return MMDResult(tuple(bandwidths), tuple(per_bw.tolist()), float(totals.square().mean().sqrt()))


def mode_radius(mixture: GaussianMixture, k: float = 3.0) -> Tensor:
    """Per-mode radius [K] holding the same mass as ±k std in 1-D (99.73% for k = 3) of an isotropic Gaussian.

    ‖x − m‖² / v is χ²_d, so the radius is √(v · χ²_d quantile): exactly k std for d = 1, 3.44 std for d = 2 at
    k = 3. A fixed k·std would cut away most of an exact mode as d grows (‖x − m‖ ≈ std·√d).
    """
    mass = math.erf(k / math.sqrt(2))
    q = scipy.stats.chi2.ppf(mass, df=mixture.means.shape[1])
    return (mixture.variances * q).sqrt()


def mode_assignment(x: Tensor, mixture: GaussianMixture, k: float = 3.0) -> Tensor:
    """Mode index [N] of the max-posterior component, or −1 ("off-mode") beyond that mode's `mode_radius`."""
    x = _as_float(x).to(mixture.means.dtype)
    mode = mixture._component_log_probs(x).argmax(1)
    dist = (x - mixture.means[mode]).norm(dim=1)
    return torch.where(dist <= mode_radius(mixture, k)[mode], mode, torch.full_like(mode, -1))


def _mode_counts(x: Tensor, mixture: GaussianMixture, k: float) -> Tensor:
    assigned = mode_assignment(x, mixture, k)
    return torch.bincount(assigned[assigned >= 0], minlength=len(mixture.weights))


def mode_mass(x: Tensor, mixture: GaussianMixture, k: float = 3.0) -> Tensor:
    """Fraction of all samples [K] inside each mode (`mode_assignment`): a mode's recovered mass, to set beside
    its weight w_k (off-mode samples count in the denominator, so the fractions sum to 1 − off-mode)."""
    return _mode_counts(x, mixture, k).to(mixture.weights.dtype) / len(x)


def modes_covered(x: Tensor, mixture: GaussianMixture, min_fraction: float = 0.1, k: float = 3.0) -> int:
    """Number of modes holding at least `min_fraction` of their expected share N·w_k of the samples."""
    counts = _mode_counts(x, mixture, k).to(mixture.weights.dtype)
    return int((counts >= min_fraction * len(x) * mixture.weights).sum())


def mode_weight_tv(x: Tensor, mixture: GaussianMixture, k: float = 3.0) -> dict[str, float]:
    """½ Σ_k |p̂_k − w_k| of the on-mode histogram (normalised over on-mode samples), and the off-mode fraction.

    With no sample on any mode the histogram is undefined and TV is reported as 1 (its maximum).
    """
    counts = _mode_counts(x, mixture, k).to(mixture.weights.dtype)
    on = counts.sum()
    tv = 1.0 if on == 0 else float(0.5 * (counts / on - mixture.weights).abs().sum())
    return {"tv": tv, "off_mode": float(1 - on / len(x))}


def _knn_radii(x: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    radii = [torch.cdist(x[i : i + chunk], x).topk(k + 1, largest=False).values[:, k] for i in range(0, len(x), chunk)]
    return torch.cat(radii)


def _in_manifold(query: Tensor, support: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """Fraction of query rows inside at least one ball B(support_j, radii_j)."""
    inside = [(torch.cdist(query[i : i + chunk], support) <= radii).any(1) for i in range(0, len(query), chunk)]
    return torch.cat(inside).float().mean()


def precision_recall(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """k-NN manifold precision and recall (Kynkäänniemi et al. 2019) for points or features [N, D].

    Each set's manifold is the union of balls reaching every point's k-th nearest neighbour in its own set;
    precision = fraction of fake inside the real manifold (fidelity), recall = real inside the fake one (coverage).
    """
    real, fake = _as_float(real), _as_float(fake).to(_as_float(real).dtype)
    precision = _in_manifold(fake, real, _knn_radii(real, k))
    recall = _in_manifold(real, fake, _knn_radii(fake, k))
    return {"precision": float(precision), "recall": float(recall)}


def mixture_report(
    x: Tensor, mixture: GaussianMixture, generator: torch.Generator | None = None, floor_seeds=(0, 1, 2)
) -> dict[str, float]:
    """Every metric above for samples x [N, d] (numbers, and per-mode lists `mode_mass` beside `mode_weight`); the
    reference is N exact samples from `generator`.

    MMD uses the mixture's own bandwidths (`DEFAULT_SCALES` × `mixture_std`), so reports are comparable across runs.
    """
    n = len(x)
    bandwidths = tuple(s * mixture_std(mixture) for s in DEFAULT_SCALES)
    reference = mixture.sample(n, generator)
    score, floor = mmd(x, reference, bandwidths), mmd_floor(mixture, n, floor_seeds, bandwidths)
    report = {"n": n, "mmd": score.total, "mmd_floor": floor.total}
    for h, value, noise in zip(bandwidths, score.values, floor.values):
        report[f"mmd@{h:.3g}"], report[f"mmd_floor@{h:.3g}"] = value, noise
    report.update(modes_covered=modes_covered(x, mixture), n_modes=len(mixture.weights))
    report.update(mode_mass=mode_mass(x, mixture).tolist(), mode_weight=mixture.weights.tolist())
    tv = mode_weight_tv(x, mixture)
    report.update(mode_tv=tv["tv"], off_mode=tv["off_mode"])
    report.update(precision_recall(reference, x))
    return report
