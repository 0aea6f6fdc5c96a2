"""The configured objective: every method runs through one call, weightings are what they say."""
import pytest
import torch
import torch.nn.functional as F

from tests.distill.test_special_cases import batch
from ui3d.distill import losses
from ui3d.distill.objective import WEIGHTINGS, DistillObjective, weighting


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


def test_weightings():
    inputs = batch(8)
    a, s = inputs["alpha_t"], inputs["sigma_t"]
    args = ("uniinstruct", inputs["x0"], inputs["d_teacher"], a, s)
    assert weighting("uniform", *args) == 1.0
    torch.testing.assert_close(weighting("sds", *args), s**2)
    torch.testing.assert_close(weighting("fantasia3d", *args), a * s**2)
    norm = (inputs["x0"] - inputs["d_teacher"]).abs().flatten(1).mean(1)
    torch.testing.assert_close(weighting("normalized", *args), 1 / norm.detach())
    torch.testing.assert_close(weighting("exact", *args), a**2 / s**4)
    torch.testing.assert_close(weighting("paper", *args, time_weight=2.0), 2 * a**2 / s**4)
    with pytest.raises(ValueError, match="time_weight"):
        weighting("paper", *args)
    assert set(WEIGHTINGS) == {"uniform", "sds", "fantasia3d", "normalized", "exact", "paper"}


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
