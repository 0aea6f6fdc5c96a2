"""The distillation loss family, one signature (DESIGN §3.2–3.3), shared by 2D distillation and 3D guidance.

Every generator loss is called as

    loss_fn(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, *, logit=None, divergence=..., weight=None, **options)

with x0 = G_θ(z) (or a render) carrying the gradient, x_t = alpha_t x0 + sigma_t eps built from it, and the
denoisers D_q (teacher, CFG already applied) and D_p (fake score) evaluated at x_t by networks whose parameters
are frozen for this step; `logit` is the discriminator's at x_t (r = q_t / p_θ,t = exp(logit)). Per-sample
losses are multiplied by `weight` (a detached [B] tensor or float) and averaged over the batch. Each returns
`(loss, stats)`. Natural units (what `weight = 1` means) are given per function; `exact_units` converts to the
score units of the divergence itself (DESIGN §3.2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d.diffusion.denoiser import expand_like
from ui3d.divergences import get as get_divergence

Stats = dict[str, Tensor]
RATIO_GRADIENTS = ("di", "none")
"""What stands in for the gradient through a detached ratio in Uni-Instruct's exact form (`uniinstruct`)."""


def per_sample_sum(x: Tensor) -> Tensor:
    """Sum over all but the batch dimension."""
    return x.flatten(1).sum(1)


def ratio_from_logit(logit: Tensor, clamp: float | None = 10.0) -> Tensor:
    """r = exp(logit): a BCE discriminator's logit is log(q/p) at its optimum (clamped for stability)."""
    return torch.exp(logit.clamp(-clamp, clamp) if clamp else logit)


def _weighted_mean(per_sample: Tensor, weight) -> Tensor:
    return (per_sample * (1.0 if weight is None else weight)).mean()


def _target_loss(x: Tensor, grad: Tensor) -> Tensor:
    """½‖x − SG(x − grad)‖² per sample: its gradient with respect to x is exactly `grad`."""
    return 0.5 * per_sample_sum((x - (x - grad).detach()) ** 2)


def sds(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake=None, *, weight=None, **_) -> tuple[Tensor, Stats]:
    """Score Distillation Sampling (DreamFusion): gradient w(t)(eps_q - eps) on x0, eps units."""
    grad = expand_like(alpha_t, x0) * (x0 - d_teacher).detach() / expand_like(sigma_t, x0)
    grad = grad * expand_like(1.0 if weight is None else weight, x0)
    return _target_loss(x0, grad).mean(), {"grad_norm": per_sample_sum(grad**2).sqrt().mean()}


def vsd(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, *, weight=None, **_) -> tuple[Tensor, Stats]:
    """Variational Score Distillation (ProlificDreamer): gradient w(t)(eps_q - eps_p) on x0, eps units."""
    grad = expand_like(alpha_t, x0) * (d_fake - d_teacher).detach() / expand_like(sigma_t, x0)
    grad = grad * expand_like(1.0 if weight is None else weight, x0)
    return _target_loss(x0, grad).mean(), {"grad_norm": per_sample_sum(grad**2).sqrt().mean()}


def dmd(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, *, weight=None, **_) -> tuple[Tensor, Stats]:
    """Distribution Matching Distillation: gradient (D_p − D_q) on x0, denoiser units.

    DMD's own normaliser 1/mean|x0 − D_q| is the `normalized` weighting; with `exact_units` it is Diff-Instruct,
    the gradient of KL(p_θ,t || q_t).
    """
    grad = (d_fake - d_teacher).detach() * expand_like(1.0 if weight is None else weight, x0)
    return _target_loss(x0, grad).mean(), {"grad_norm": per_sample_sum(grad**2).sqrt().mean()}


def diff_instruct(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, *, weight=None, **_) -> tuple[Tensor, Stats]:
    """Diff-Instruct: loss SG(s_p − s_q)·x_t, score units (= `dmd` times alpha²/sigma²)."""
    w = alpha_t**2 / sigma_t**2 * (1.0 if weight is None else weight)
    return dmd(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, weight=w)


def _bin_sums(values: Tensor, t: Tensor | None, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """(bin of each sample, per-bin sums, per-bin counts) of `values` [B] in `n_bins` bins of t ∈ [0, 1]; every
    sample in bin 0 when t is None."""
    if t is None:
        bins = torch.zeros(len(values), dtype=torch.long, device=values.device)
    else:
        bins = (t.detach().flatten() * n_bins).long().clamp(0, n_bins - 1)
    zeros = torch.zeros(n_bins, dtype=values.dtype, device=values.device)
    return bins, zeros.scatter_add(0, bins, values), zeros.scatter_add(0, bins, torch.ones_like(values))


def _global_sums(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors summed over every process of a torch.distributed group (themselves with one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return tensors
    flat = torch.cat([x.detach().flatten() for x in tensors])
    dist.all_reduce(flat)
    return tuple(part.view_as(x) for part, x in zip(flat.split([x.numel() for x in tensors]), tensors))


class RatioNormalizer:
    """f-distill's two-stage normalisation (Xu et al. 2025, §4 and Alg. 1) for any batch size.

    Stage 1: r is divided by its mean inside its bin of t ∈ [0, 1] (E_p[r_t] = q_t/p_t averaged under p is 1 at
    every t, so this removes the discriminator's miscalibration), then clipped to `clip`. Stage 2: the caller
    divides its per-sample weight h(r) by the mean of h (`weight_mean`), so the loss keeps its scale whatever
    the divergence and however confident the discriminator. `momentum` 0 uses the current batch's means, as
    f-distill does; a 3D guidance renders one or a few views per step, so it uses running means over steps,
    mean ← momentum · mean + (1 − momentum) · batch mean (bias-corrected like Adam's moments).

    Under several processes (torch.distributed) the batch means are those of the global batch: every rank adds
    its per-bin sums and counts to the others', so all ranks normalise alike and hold the same running means
    (a checkpoint written by rank 0 then resumes every rank as it was).
    """

    def __init__(self, n_bins: int = 10, clip: tuple[float, float] | None = (0.1, 20.0), momentum: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"ratio momentum must be in [0, 1), got {momentum}")
        self.n_bins, self.clip, self.momentum = n_bins, clip, momentum
        zeros = torch.zeros(n_bins, dtype=torch.float64)
        self.state = {"r_sum": zeros.clone(), "r_weight": zeros.clone(), "h_sum": zeros[:1].clone(),
                      "h_weight": zeros[:1].clone()}

    def _running(self, key: str, sums: Tensor, counts: Tensor) -> Tensor:
        """Per-bin means of this batch (momentum 0), or running means updated with it where it has samples."""
        sums, counts = _global_sums(sums, counts)
        batch = sums / counts.clamp(min=1)
        if self.momentum == 0.0:
            return batch
        seen, m = (counts > 0).cpu(), self.momentum
        total, weight = self.state[f"{key}_sum"], self.state[f"{key}_weight"]
        total[seen] = m * total[seen] + (1 - m) * batch.detach().double().cpu()[seen]
        weight[seen] = m * weight[seen] + (1 - m)
        return (total / weight.clamp(min=1e-12)).to(batch)

    def ratio(self, r: Tensor, t: Tensor | None) -> tuple[Tensor, Tensor]:
        """(r over its bin's mean, clipped; a [B] mask of the samples the clip changed)."""
        bins, sums, counts = _bin_sums(r.detach(), t, self.n_bins)
        r = r / self._running("r", sums, counts)[bins]
        if self.clip is None:
            return r, torch.zeros_like(r, dtype=torch.bool)
        lo, hi = self.clip
        return r.clamp(lo, hi), (r.detach() <= lo) | (r.detach() >= hi)

    def weight_mean(self, h: Tensor) -> Tensor:
        """The mean of the per-sample weights h [B] (of this batch, or running) that stage 2 divides by."""
        h = h.detach()
        return self._running("h", h.sum()[None], h.new_tensor([float(len(h))]))[0]

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.clone() for k, v in self.state.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key in self.state:
            self.state[key] = state[key].detach().to(torch.float64).cpu().clone()


def f_distill(
    x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, *, logit, divergence="js", weight=None, t=None,
    normalize=True, normalizer: RatioNormalizer | None = None, n_time_bins=10, ratio_clip=(0.1, 20.0),
    logit_clamp=10.0, **_,
) -> tuple[Tensor, Stats]:
    """f-distill (Xu et al. 2025, Eq. 4): the DMD gradient weighted by h(r), denoiser units.

    With `normalize`, r and h(r) go through the two-stage normalisation (`normalizer`, or batch means over
    `n_time_bins` bins of t ∈ [0, 1] with r clipped to `ratio_clip`). Without it and with `exact_units`, the
    gradient is that of D_f(q_t || p_θ,t).
    """
    div = get_divergence(divergence)
    r = ratio_from_logit(logit.detach(), logit_clamp)
    if normalize:
        normalizer = normalizer or RatioNormalizer(n_time_bins, ratio_clip)
        r = normalizer.ratio(r, t)[0]
    h = div.h(r)
    if normalize:
        h = h / normalizer.weight_mean(h)
    w = h if weight is None else h * weight
    loss, stats = dmd(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, weight=w)
    return loss, {**stats, "r": r.mean(), "h": h.mean(), "h_sd": h.std(correction=0)}


def sid(x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, *, alpha=1.2, weight=None, **_) -> tuple[Tensor, Stats]:
    """Score identity Distillation (Zhou et al. 2024): (D_q − D_p)·[(D_q − x0) − α(D_q − D_p)], denoiser units.

    α = 1.2 is SiD, α = 1 is SIM's L2 form. Gradients flow through the networks' inputs (x_t) and x0; SiD's
    normaliser 1/mean|x0 − D_q| is the `normalized` weighting.
    """
    diff = d_teacher - d_fake
    per_sample = per_sample_sum(diff * ((d_teacher - x0) - alpha * diff))
    return _weighted_mean(per_sample, weight), {"delta2": per_sample_sum(diff**2).mean().detach()}


def uniinstruct(
    x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, *, logit, divergence="fkl", form="exact", detach_ratio=False,
    ratio_gradient="di", normalizer: RatioNormalizer | None = None, t=None, table5=False, lambda_sim=1.0,
    lambda_di=1.0, logit_clamp=10.0, weight=None, **_,
) -> tuple[Tensor, Stats]:
    """Uni-Instruct's per-time loss in denoiser units (score units are alpha²/sigma⁴ times these).

    `form="exact"` (DESIGN §3.2; its θ-gradient equals ∇_θ J_t, J_t = E_p[h(r)‖s_q − s_p‖²]):
        L = (h − r h')(r) ‖δ‖² − 2 h(r) δ·(c − s_p),  δ = s_q − s_p,  c − s_p from x0 and D_p,
    that is 2h(r) × SiD's loss with α = (h + r h')/(2h) (½ for rkl, 1 for fkl, 3/2 for χ²); the −r h' ‖δ‖²
    part is the ratio's own dependence on θ. Gradients flow through r's input unless `detach_ratio`; then
    `ratio_gradient` says what stands in for the ratio's gradients: `di` the DI-type term x_t · SG(v),
    v = −[C2 ‖δ‖² + 2 r h' δ·(c − s_p)] δ (exact when ∇log r = s_q − s_p); `none` nothing: r is a frozen
    weight, L = h(r) [‖δ‖² − 2 δ·(c − s_p)] (2h(r) × SiD with α = ½, as f-distill weights DMD by h(r)).
    A `normalizer` (f-distill's two-stage normalisation) divides r by its mean in its bin of `t` ∈ [0, 1] and
    the loss by the mean of h.
    `form="paper"`: Eq. 3.5–3.6 as written, −[λ_SIM SG(C1) δ·(s_p − c) + λ_DI SG(C2 ‖δ‖² δ)·x_t]; `table5`
    uses the paper's Table 5 C1 values (wrong for rkl and jkl) to reproduce it.
    """
    if ratio_gradient not in RATIO_GRADIENTS:
        raise ValueError(f"unknown ratio_gradient '{ratio_gradient}'; expected one of {', '.join(RATIO_GRADIENTS)}")
    div = get_divergence(divergence, table5=table5 and form == "paper")
    delta = d_teacher - d_fake  # δ = s_q − s_p in denoiser units
    c_minus_sp = x0 - d_fake  # c − s_p = alpha (x0 − D_p)/sigma², as x_t − sigma eps = alpha x0
    unit = expand_like(alpha_t / sigma_t**2, x0)  # v is cubic in δ: x_t·v_score = alpha³/sigma⁶ x_t·v, over alpha²/sigma⁴
    detach = detach_ratio or form == "paper"
    raw = ratio_from_logit(logit.detach() if detach else logit, logit_clamp)
    r, clipped = normalizer.ratio(raw, t) if normalizer is not None else (raw, torch.zeros_like(raw, dtype=torch.bool))
    dd, dc = per_sample_sum(delta**2), per_sample_sum(delta * c_minus_sp)
    h = div.h(r)
    if form == "exact" and detach_ratio and ratio_gradient == "none":
        per_sample = h * (dd - 2 * dc)
    elif form == "exact":
        rh1 = div.h_prime_r(r)
        per_sample = (h - rh1) * dd - 2 * h * dc
        if detach_ratio:
            v = -expand_like(div.c2(r) * dd + 2 * rh1 * dc, x0) * delta
            per_sample = per_sample + per_sample_sum(x_t * (v * unit).detach())
    elif form == "paper":
        di = expand_like(div.c2(r) * dd, x0) * delta
        per_sample = lambda_sim * div.c1(r) * dc - lambda_di * per_sample_sum(x_t * (di * unit).detach())
    else:
        raise ValueError(f"unknown Uni-Instruct form '{form}'; expected 'exact' or 'paper'")
    h_mean = normalizer.weight_mean(h) if normalizer is not None else None
    if h_mean is not None:
        per_sample, h = per_sample / h_mean, h / h_mean
    at_clamp = clipped | (logit.detach().abs() >= logit_clamp if logit_clamp else torch.zeros_like(clipped))
    stats = {"r": raw.mean().detach(), "r_norm": r.mean().detach(), "h": h.mean().detach(),
             "h_sd": h.detach().std(correction=0), "at_clamp": at_clamp.float().mean(), "logit_gen": logit.detach().mean(), "delta2": dd.mean().detach()}
    return _weighted_mean(per_sample, weight), stats


def gan_discriminator(logit_real: Tensor, logit_fake: Tensor) -> tuple[Tensor, Stats]:
    """BCE discriminator loss softplus(−logit_real) + softplus(logit_fake); its optimum has logit = log(q/p)."""
    loss = F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()
    return loss, {"logit_real": logit_real.mean().detach(), "logit_fake": logit_fake.mean().detach()}


def gan_generator(logit_fake: Tensor) -> tuple[Tensor, Stats]:
    """Non-saturating generator loss softplus(−logit_fake)."""
    return F.softplus(-logit_fake).mean(), {}


def dsm(d_fake: Tensor, x0: Tensor, weight=None) -> tuple[Tensor, Stats]:
    """Denoising score matching for the fake score: w ‖D_p(x_t) − SG(x0)‖² (x_t built from the detached x0)."""
    return _weighted_mean(per_sample_sum((d_fake - x0.detach()) ** 2), weight), {}


GENERATOR_LOSSES = {
    "sds": sds, "vsd": vsd, "dmd": dmd, "diff-instruct": diff_instruct, "f-distill": f_distill, "sid": sid,
    "uniinstruct": uniinstruct,
}
"""Every generator loss by name; all share the signature above."""


def eps_units(method: str, alpha_t, sigma_t):
    """Factor turning a method's gradient on x0 (weight 1, r = 1, the direct term) into ε units, (α/σ)(D_q − D_p):
    the `eps-sds` weighting multiplies threestudio's σ² by it, so that every method weights time as SDS and VSD
    do. SDS and VSD are in ε units; DMD, f-distill and SiD's direct term give D_q − D_p (denoiser units);
    Uni-Instruct's h(r)[‖δ‖² − 2δ·(c − s_p)] gives twice that; Diff-Instruct α²/σ² times it."""
    if method in ("sds", "vsd"):
        return 1.0
    if method in ("dmd", "f-distill", "sid"):
        return alpha_t / sigma_t
    if method == "uniinstruct":
        return alpha_t / (2 * sigma_t)
    if method == "diff-instruct":
        return sigma_t / alpha_t
    raise KeyError(f"unknown method '{method}'; expected one of {', '.join(GENERATOR_LOSSES)}")


def exact_units(method: str, alpha_t, sigma_t):
    """Factor turning a method's natural units into the score units of its divergence (DESIGN §3.2)."""
    if method == "uniinstruct":
        return alpha_t**2 / sigma_t**4
    if method == "sid":  # SiD's loss is half the score-identity form: at α = ½ it is Uni-Instruct rkl's gradient
        return 2 * alpha_t**2 / sigma_t**4
    if method in ("dmd", "f-distill"):
        return alpha_t**2 / sigma_t**2
    if method in ("sds", "vsd"):
        return alpha_t / sigma_t
    if method == "diff-instruct":
        return 1.0
    raise KeyError(f"unknown method '{method}'; expected one of {', '.join(GENERATOR_LOSSES)}")
