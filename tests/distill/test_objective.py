"""The configured objective: every method runs through one call, weightings are what they say."""
import pytest
import torch
import torch.nn.functional as F

from tests.distill.test_special_cases import batch
from ui3d import divergences
from ui3d.diffusion.schedules import VPDiscrete
from ui3d.distill import losses
from ui3d.distill.objective import WEIGHTINGS, DistillObjective, weighting
from ui3d.distill.oracle import THETA0, alpha_sigma, d_f, finite_difference, j_t, quadrature_batch, rel_err


@pytest.mark.parametrize("method", list(losses.GENERATOR_LOSSES))
def test_every_method_gives_a_finite_loss_and_gradient(method):
    inputs = batch(7)
    objective = DistillObjective(DistillObjective.Config(method=method, lambda_gan=0.5))
    out = objective(**inputs, t=torch.rand(4, dtype=torch.float64))
    key = f"loss_{method.replace('-', '_')}"
    assert key in out and "loss_gan" in out
    torch.testing.assert_close(out["loss"], out[key] + 0.5 * F.softplus(-inputs["logit"]).mean())
    (grad,) = torch.autograd.grad(out["loss"], inputs["x0"])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_sds_and_fantasia3d_weightings_read_off_a_ddpm_schedule():
    """threestudio's SDS weight is 1 − ᾱ_t, Fantasia3D's √ᾱ_t (1 − ᾱ_t), with ᾱ the schedule's alphas_cumprod."""
    schedule = VPDiscrete.scaled_linear()
    t = torch.tensor([20, 300, 700, 980])
    alpha, sigma = schedule.alpha_sigma(t)
    alphas_cumprod = schedule.alphas_cumprod[t].float()
    x0 = torch.randn(4, 3)
    args = ("uniinstruct", x0, x0 + 1, alpha, sigma)
    torch.testing.assert_close(weighting("sds", *args), 1 - alphas_cumprod)
    torch.testing.assert_close(weighting("fantasia3d", *args), alphas_cumprod.sqrt() * (1 - alphas_cumprod))
    assert weighting("uniform", *args) == 1.0


@pytest.mark.parametrize("method, options", [
    ("uniinstruct", dict(divergence="rkl", detach_ratio=True, ratio_gradient="none")),
    ("uniinstruct", dict(divergence="fkl", detach_ratio=True, ratio_gradient="none")),
    ("dmd", {}), ("diff-instruct", {}), ("f-distill", dict(divergence="rkl", normalize_ratio=False)), ("vsd", {}),
])
def test_eps_sds_weighting_gives_every_method_vsds_gradient(method, options):
    """`eps-sds` is threestudio's σ² on the ε-unit gradient: at r = 1 (logit 0), with the denoisers taken as
    fixed (their inputs detached), every method's gradient on x0 is VSD's σ²·(α/σ)(D_q − D_p) = ασ(D_q − D_p).
    `sds` on a denoiser-unit method is not: it weighs each sample by σ/α (×2 for Uni-Instruct) more."""
    inputs = batch(3)
    inputs = {**inputs, "d_teacher": inputs["d_teacher"].detach(), "d_fake": inputs["d_fake"].detach(),
              "logit": torch.zeros(4, dtype=torch.float64)}
    alpha, sigma = (inputs[k][:, None, None, None] for k in ("alpha_t", "sigma_t"))
    vsd = alpha * sigma * (inputs["d_fake"] - inputs["d_teacher"]) / 4  # the loss is a batch mean
    for weight_name, expected in (("eps-sds", vsd), ("sds", None)):
        objective = DistillObjective(DistillObjective.Config(method=method, weighting=weight_name, **options))
        (grad,) = torch.autograd.grad(objective(**inputs)["loss"], inputs["x0"])
        if expected is not None:
            torch.testing.assert_close(grad, expected)
        elif method != "vsd":
            assert not torch.allclose(grad, vsd)
    args = (method, inputs["x0"], inputs["d_teacher"], inputs["alpha_t"], inputs["sigma_t"])
    torch.testing.assert_close(torch.as_tensor(weighting("eps-sds", *args, eps_power=0.0)),
                               torch.as_tensor(weighting("sds", *args)))  # power 0 of the ε-unit factor is `sds`


def test_normalized_weighting_makes_each_samples_dmd_gradient_scale_free():
    """DMD's normaliser 1/mean|x0 − D_q|: scaling one sample's teacher and fake deviations from x0 by k leaves its
    gradient unchanged; a teacher 0.5 away from x0 everywhere gets the weight 2."""
    inputs = batch(8)
    objective = DistillObjective(DistillObjective.Config(method="dmd", weighting="normalized"))
    k = torch.tensor([0.1, 1.0, 3.0, 40.0], dtype=torch.float64)[:, None, None, None]
    x0 = inputs["x0"]
    scaled = {**inputs, "d_teacher": x0 + k * (inputs["d_teacher"] - x0), "d_fake": x0 + k * (inputs["d_fake"] - x0)}
    grads = [torch.autograd.grad(objective(**b)["loss"], x0, retain_graph=True)[0] for b in (inputs, scaled)]
    torch.testing.assert_close(grads[1], grads[0])
    signs = torch.randint(0, 2, x0.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    args = ("dmd", x0, x0 - 0.5 * signs, inputs["alpha_t"], inputs["sigma_t"])
    torch.testing.assert_close(weighting("normalized", *args), torch.full((4,), 2.0, dtype=torch.float64))


@pytest.mark.parametrize("method, options, oracle, divergence", [
    ("uniinstruct", dict(divergence="fkl"), j_t, "fkl"),
    ("sid", dict(sid_alpha=0.5), j_t, "rkl"),
    ("f-distill", dict(divergence="js", normalize_ratio=False), d_f, "js"),
    ("dmd", {}, d_f, "rkl"),
    ("vsd", {}, d_f, "rkl"),
])
def test_exact_and_paper_weightings_give_the_divergences_gradient(method, options, oracle, divergence):
    """`paper` is the divergence's own units times the time weight: with the quadrature weights as time weight the
    objective's θ-gradient is that of J_t (uniinstruct, SiD at α = ½) or of D_f(q_t‖p_θ,t) (f-distill, DMD, VSD),
    by finite differences; `exact` is `paper` with time weight 1."""
    alpha, sigma = alpha_sigma(0.6)
    fd = finite_difference(lambda th: oracle(th, divergences.get(divergence), alpha, sigma))
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    quadrature, w = quadrature_batch(theta, alpha, sigma)
    cfg = DistillObjective.Config(method=method, weighting="paper", logit_clamp=None, **options)
    (grad,) = torch.autograd.grad(DistillObjective(cfg)(**quadrature, time_weight=w)["loss"], theta)
    assert rel_err(grad, fd) < 1e-3, (grad, fd)
    args = (method, quadrature["x0"], quadrature["d_teacher"], alpha, sigma)
    assert weighting("exact", *args) == weighting("paper", *args, time_weight=1.0)


def test_every_weighting_name_is_implemented_and_distinct():
    inputs = batch(8)
    args = ("uniinstruct", inputs["x0"], inputs["d_teacher"], inputs["alpha_t"], inputs["sigma_t"])
    values = {tuple(torch.as_tensor(weighting(name, *args, time_weight=3.0)).expand(4).tolist()) for name in WEIGHTINGS}
    assert len(values) == len(WEIGHTINGS)  # no name falls through to another's weight
    for name in WEIGHTINGS:
        DistillObjective(DistillObjective.Config(weighting=name))
    with pytest.raises(ValueError, match="time_weight"):
        weighting("paper", *args)


@pytest.mark.parametrize(
    "field, value, message",
    [("method", "dmd3", "unknown method 'dmd3'"), ("divergence", "kl", "unknown divergence 'kl'"),
     ("form", "exakt", "unknown form 'exakt'"), ("weighting", "snr", "unknown weighting 'snr'")],
)
def test_bad_config_values_are_named(field, value, message):
    with pytest.raises((ValueError, KeyError), match=message):
        DistillObjective(DistillObjective.Config(**{field: value}))


def test_missing_logit_is_explained():
    inputs = batch(9)
    inputs.pop("logit")
    with pytest.raises(ValueError, match="needs the discriminator logit"):
        DistillObjective(DistillObjective.Config(method="uniinstruct"))(**inputs)
    out = DistillObjective(DistillObjective.Config(method="sid"))(**inputs)  # SiD alone needs no ratio
    assert torch.isfinite(out["loss"])
