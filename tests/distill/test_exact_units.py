"""`exact_units` puts every method in the score units of its divergence: methods whose gradients are the same
estimator must then give the same gradient on x0 (networks that depend on x_t, float64, per-sample α, σ)."""
import pytest
import torch

from tests.distill.linear_problem import linear_problem
from ui3d.distill.objective import DistillObjective


def gradient(method: str, fake_is_x0: bool = False, **options) -> torch.Tensor:
    p = linear_problem()
    d_fake = p["x0"].detach() if fake_is_x0 else p["d_fake"]  # D_p = x0: the fake score of SDS (the true noise)
    objective = DistillObjective(DistillObjective.Config(method=method, weighting="exact", **options))
    ones = torch.ones_like(p["alpha"])
    out = objective(p["x0"], p["x_t"], p["alpha"], p["sigma"], p["d_teacher"], d_fake, logit=torch.zeros_like(ones),
                    t=p["t"], time_weight=ones)
    (grad,) = torch.autograd.grad(out["loss"], p["x0"])
    return grad


@pytest.mark.parametrize("left, right", [
    (dict(method="sid", sid_alpha=0.5), dict(method="uniinstruct", divergence="rkl", form="exact")),
    (dict(method="vsd"), dict(method="dmd")),
    (dict(method="sds"), dict(method="vsd", fake_is_x0=True)),
    (dict(method="diff-instruct"), dict(method="dmd")),
    (dict(method="f-distill", divergence="rkl", normalize_ratio=False), dict(method="dmd")),
])
def test_methods_with_one_gradient_agree_in_exact_units(left, right):
    torch.testing.assert_close(gradient(**left), gradient(**right), rtol=1e-10, atol=1e-12)
