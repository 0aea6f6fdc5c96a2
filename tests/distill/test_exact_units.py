"""`exact_units` puts every method in the score units of its divergence: methods whose gradients are the same
estimator must then give the same gradient on x0 (networks that depend on x_t, float64, per-sample α, σ)."""
import pytest
import torch

from ui3d.distill.objective import DistillObjective


def gradient(method: str, fake_is_x0: bool = False, **options) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    batch, dim = 8, 5
    teacher, fake = (torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.3 for _ in range(2))
    x0 = torch.randn(batch, dim, generator=g, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(batch, generator=g, dtype=torch.float64) * 0.8 + 0.1
    sigma = (1 - alpha**2).sqrt()
    x_t = alpha[:, None] * x0 + sigma[:, None] * torch.randn(batch, dim, generator=g, dtype=torch.float64)
    d_fake = x0.detach() if fake_is_x0 else x_t @ fake.T  # D_p = x0: the fake score of SDS (the true noise)
    objective = DistillObjective(DistillObjective.Config(method=method, weighting="exact", **options))
    out = objective(x0, x_t, alpha, sigma, x_t @ teacher.T, d_fake, logit=torch.zeros(batch, dtype=torch.float64),
                    t=torch.rand(batch, generator=g, dtype=torch.float64), time_weight=torch.ones(batch, dtype=torch.float64))
    (grad,) = torch.autograd.grad(out["loss"], x0)
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
