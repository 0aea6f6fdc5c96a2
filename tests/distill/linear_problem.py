"""A small problem for exact loss comparisons: linear denoisers D(x_t) = W x_t (so gradients flow through the
networks' inputs), float64, per-sample α and σ, a random logit (r ≠ 1) and random times."""
import torch


def linear_problem(seed: int = 0, batch: int = 8, dim: int = 5, scale: float = 0.3) -> dict:
    g = torch.Generator().manual_seed(seed)
    teacher, fake = (torch.randn(dim, dim, generator=g, dtype=torch.float64) * scale for _ in range(2))
    x0 = torch.randn(batch, dim, generator=g, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(batch, generator=g, dtype=torch.float64) * 0.8 + 0.1
    sigma = (1 - alpha**2).sqrt()
    x_t = alpha[:, None] * x0 + sigma[:, None] * torch.randn(batch, dim, generator=g, dtype=torch.float64)
    logit = torch.randn(batch, generator=g, dtype=torch.float64)
    t = torch.rand(batch, generator=g, dtype=torch.float64)
    return dict(x0=x0, x_t=x_t, alpha=alpha, sigma=sigma, d_teacher=x_t @ teacher.T, d_fake=x_t @ fake.T,
                logit=logit, t=t)
