"""The analytic mixture teacher: its denoiser is the exact Tweedie denoiser of its own log-density."""
import torch

from ui3d.teachers.gaussians import GaussianMixture


def ring() -> GaussianMixture:
    return GaussianMixture.ring(8, 2.0, 0.1, torch.arange(8, 0, -1, dtype=torch.float64))


def test_score_equals_autograd_of_log_density():
    mixture, x = ring(), torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x).sum(), x)
    assert torch.allclose(mixture.score(x.detach()), grad, atol=1e-10)


def test_per_sample_marginal_denoiser_is_tweedie_of_the_marginal_log_density():
    mixture, g = ring(), torch.Generator().manual_seed(1)
    alpha = torch.rand(64, dtype=torch.float64, generator=g) * 0.98 + 0.01
    sigma = (1 - alpha**2).sqrt()
    x = torch.randn(64, 2, dtype=torch.float64, generator=g).requires_grad_(True)
    (score,) = torch.autograd.grad(mixture.marginal_log_prob(x, alpha, sigma).sum(), x)
    tweedie = (x.detach() + sigma[:, None] ** 2 * score) / alpha[:, None]
    assert torch.allclose(mixture.marginal_denoiser(x.detach(), alpha, sigma), tweedie, atol=1e-9)
