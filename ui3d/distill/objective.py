"""The configured generator objective: one of the loss family, a per-time weighting, and the GAN term.

3D guidance and the 2D distillation system both hold a `DistillObjective` built from the same `Config` block,
so `method`, `divergence`, `form`, `weighting`, `lambda_gan` mean the same thing everywhere; a guidance's `Config`
inherits `ObjectiveConfig` (every field but the method) rather than copying fields from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from ui3d import divergences
from ui3d.distill import losses

WEIGHTINGS = ("uniform", "sds", "eps-sds", "fantasia3d", "normalized", "exact", "paper", "diff-instruct")


def weighting(name: str, method: str, x0: Tensor, d_teacher: Tensor, alpha_t, sigma_t, time_weight=None,
              eps_power: float = 1.0):
    """Per-sample weight (detached) of a named weighting.

    `uniform`: 1 · `sds`: sigma_t² (threestudio's 1 − ᾱ) on the method's own units · `eps-sds`: sigma_t² on the
    gradient in ε units, as threestudio and ProlificDreamer apply it (`losses.eps_units`): for a denoiser-unit
    method (Uni-Instruct, DMD) `sds` weighs large t by σ/α more than SDS and VSD do, `eps-sds` exactly as they do
    (at r = 1 Uni-Instruct's gradient on x0 is then VSD's); `eps_power` p takes the ε-unit factor to the power p, so
    p = 0 is `sds` and p = 1 ε units (a 3D guidance can step-schedule p) · `fantasia3d`: alpha_t sigma_t² ·
    `normalized`: 1/mean|x0 − D_q| (DMD's and SiD's normaliser) · `exact`: the divergence's own score units ·
    `paper`: exact units times ½g²(t)/p(t), which the caller passes as `time_weight` (Eq. 3.5's time integral) ·
    `diff-instruct`: exact units times Diff-Instruct's w(t) = sigma_t²/alpha_t², the noise variance of the VE
    (EDM) form its teachers use: the gradient on x0 of `diff-instruct` and `dmd` is then D_p − D_q at every t, as
    in its code (`DI_EDMLoss.gloss`: weight 1 on (D_p − D_q)·x0).
    """
    if name == "uniform":
        return 1.0
    if name == "sds":
        return sigma_t**2
    if name == "eps-sds":
        return sigma_t**2 * losses.eps_units(method, alpha_t, sigma_t) ** eps_power
    if name == "fantasia3d":
        return alpha_t * sigma_t**2
    if name == "normalized":
        return 1.0 / (x0 - d_teacher).detach().abs().flatten(1).mean(1).clamp(min=1e-5)
    if name in ("exact", "paper", "diff-instruct"):
        units = losses.exact_units(method, alpha_t, sigma_t)
        if name == "exact":
            return units
        if name == "diff-instruct":
            return units * sigma_t**2 / alpha_t**2
        if time_weight is None:
            raise ValueError("weighting 'paper' needs time_weight = ½ g²(t) / p(t) from the noise schedule")
        return units * time_weight
    raise ValueError(f"unknown weighting '{name}'; expected one of {', '.join(WEIGHTINGS)}")


@dataclass
class ObjectiveConfig:
    """Every setting of the generator objective but its method: `DistillObjective.Config` adds the method, and a
    guidance of one method (`ui3d.guidance.uniinstruct`) inherits these fields, so its YAML writes them flat."""

    divergence: str = "fkl"
    """An f from `ui3d.divergences.names()` (uniinstruct, f-distill)."""
    form: str = "exact"
    """uniinstruct: `exact` (verified gradient, DESIGN §3.2) or `paper` (Eq. 3.5–3.6 as written)."""
    detach_ratio: bool = False
    """uniinstruct exact: stop the gradient through r (`ratio_gradient` says what replaces it)."""
    ratio_gradient: str = "di"
    """uniinstruct exact with `detach_ratio`: `di` (the DI-type term, exact when ∇log r = s_q − s_p) or
    `none` (r only weights the loss, as in f-distill)."""
    table5: bool = False
    """uniinstruct paper: use the paper's Table 5 C1 values (wrong for rkl, jkl) to reproduce it."""
    sid_alpha: float = 1.2
    """sid: α (1.2 SiD, 1.0 SIM-L2)."""
    weighting: str = "normalized"
    """uniform | sds | eps-sds | fantasia3d | normalized | exact | paper | diff-instruct (see `weighting`)."""
    lambda_gan: float = 0.0
    """Weight of the non-saturating GAN generator term softplus(−logit)."""
    logit_clamp: float = 10.0
    """|logit| bound before r = exp(logit)."""
    normalize_ratio: Optional[bool] = None
    """f-distill's two-stage normalisation of r (by its mean per time bin) and of h(r) (by its mean), for
    f-distill and uniinstruct; None: on for f-distill, off for uniinstruct."""
    ratio_momentum: float = 0.0
    """Normalisation means: 0 takes the batch's (f-distill); m in (0, 1) running means over steps with
    momentum m (a 3D guidance sees one or a few views per step)."""
    n_time_bins: int = 10
    """Time bins of the ratio normalisation."""
    ratio_clip: list = field(default_factory=lambda: [0.1, 20.0])
    """Bounds of the normalised r."""


class DistillObjective:
    """Generator loss of any method in the family, weighted per time step, plus `lambda_gan` × the GAN term."""

    @dataclass
    class Config(ObjectiveConfig):
        """`ObjectiveConfig` and the loss of the family it configures."""

        method: str = "uniinstruct"
        """sds | vsd | dmd | diff-instruct | f-distill | sid | uniinstruct."""

    def __init__(self, cfg: "DistillObjective.Config"):
        if cfg.method not in losses.GENERATOR_LOSSES:
            raise ValueError(f"unknown method '{cfg.method}'; expected one of {', '.join(losses.GENERATOR_LOSSES)}")
        divergences.get(cfg.divergence)  # fails with the known names
        if cfg.form not in ("exact", "paper"):
            raise ValueError(f"unknown form '{cfg.form}'; expected 'exact' or 'paper'")
        if cfg.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting '{cfg.weighting}'; expected one of {', '.join(WEIGHTINGS)}")
        if cfg.ratio_gradient not in losses.RATIO_GRADIENTS:
            raise ValueError(f"unknown ratio_gradient '{cfg.ratio_gradient}'; expected one of "
                             f"{', '.join(losses.RATIO_GRADIENTS)}")
        self.cfg = cfg
        self.needs_ratio = cfg.method in ("uniinstruct", "f-distill") or cfg.lambda_gan > 0
        normalize = cfg.method == "f-distill" if cfg.normalize_ratio is None else cfg.normalize_ratio
        self.normalizer = losses.RatioNormalizer(cfg.n_time_bins, tuple(cfg.ratio_clip), cfg.ratio_momentum) \
            if normalize and cfg.method in ("f-distill", "uniinstruct") else None
        self.needs_fake = cfg.method != "sds"

    def __call__(
        self, x0, x_t, alpha_t, sigma_t, d_teacher, d_fake=None, logit=None, t=None, time_weight=None, gan_logit=None,
        eps_power: float = 1.0,
    ) -> dict[str, Tensor]:
        """`{"loss": total, "loss_<method>": …, "loss_gan": … (unweighted), <stats>}`.

        `t` ∈ [0, 1] bins f-distill's ratio normalisation; `time_weight` feeds the `paper` weighting; `gan_logit`
        (default `logit`) is the discriminator logit of the GAN term, where its gradient differs from the ratio's;
        `eps_power` is the `eps-sds` weighting's power of its ε-unit factor.
        """
        cfg = self.cfg
        if self.needs_ratio and logit is None:
            raise ValueError(f"method '{cfg.method}' with lambda_gan={cfg.lambda_gan} needs the discriminator logit")
        w = weighting(cfg.weighting, cfg.method, x0, d_teacher, alpha_t, sigma_t, time_weight, eps_power)
        loss, stats = losses.GENERATOR_LOSSES[cfg.method](
            x0, x_t, alpha_t, sigma_t, d_teacher, d_fake, logit=logit, weight=w, t=t,
            divergence=cfg.divergence, form=cfg.form, detach_ratio=cfg.detach_ratio,
            ratio_gradient=cfg.ratio_gradient, table5=cfg.table5, alpha=cfg.sid_alpha, logit_clamp=cfg.logit_clamp,
            normalize=self.normalizer is not None, normalizer=self.normalizer,
        )
        out = {"loss": loss, f"loss_{cfg.method.replace('-', '_')}": loss}
        if cfg.lambda_gan > 0:
            out["loss_gan"] = losses.gan_generator(logit if gan_logit is None else gan_logit)[0]
            out["loss"] = loss + cfg.lambda_gan * out["loss_gan"]
        return {**out, **{k: v.detach() for k, v in stats.items()}}

    def state_dict(self) -> dict[str, Tensor]:
        """The running ratio statistics (empty without a running normalisation)."""
        return self.normalizer.state_dict() if self.normalizer is not None and self.cfg.ratio_momentum else {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state and self.normalizer is not None:
            self.normalizer.load_state_dict(state)
