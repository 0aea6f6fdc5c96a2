"""Analytic oracle problems for the losses: Gaussian student p_θ, θ = (mean, std), Gaussian-mixture teacher,
both noised in closed form, so scores and r are exact; J_t and D_f by quadrature, expectations over (z, eps) by
tensor-product Gauss-Hermite quadrature (deterministic: relative errors far below 1e-3)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ui3d.divergences import Divergence
from ui3d.teachers.gaussians import GaussianMixture

TEACHER = GaussianMixture(
    torch.tensor([0.3, 0.7], dtype=torch.float64),
    torch.tensor([[-1.0], [1.2]], dtype=torch.float64),
    torch.tensor([0.25, 0.16], dtype=torch.float64),
)
THETA0 = (0.3, 1.4)  # student wider than the teacher: r = q/p is bounded, every E_p[h(r)...] finite
SIGMAS = (0.3, 0.6, 0.9)  # three noise levels of a VP schedule, alpha = sqrt(1 - sigma²)


def alpha_sigma(sigma: float) -> tuple[float, float]:
    return math.sqrt(1 - sigma**2), sigma


def student(theta: torch.Tensor) -> GaussianMixture:
    return GaussianMixture.gaussian(theta[:1], theta[1])


def _grid() -> torch.Tensor:
    return torch.linspace(-14, 14, 28001, dtype=torch.float64)[:, None]


def _grid_integral(fn) -> float:
    x = _grid()
    return float(torch.trapezoid(fn(x), x[:, 0]))


def j_t(theta: torch.Tensor, div: Divergence, alpha: float, sigma: float) -> float:
    """J_t(θ) = E_{p_θ,t}[h(r) (s_q − s_p)²]."""
    p, q = student(theta).noised(alpha, sigma), TEACHER.noised(alpha, sigma)

    def integrand(x):
        r = torch.exp(q.log_prob(x) - p.log_prob(x))
        return torch.exp(p.log_prob(x)) * div.h(r) * ((q.score(x) - p.score(x)) ** 2).sum(1)

    return _grid_integral(integrand)


def d_f(theta: torch.Tensor, div: Divergence, alpha: float, sigma: float) -> float:
    """D_f(q_t || p_θ,t) = ∫ p f(q/p)."""
    p, q = student(theta).noised(alpha, sigma), TEACHER.noised(alpha, sigma)
    return _grid_integral(lambda x: torch.exp(p.log_prob(x)) * div.f(torch.exp(q.log_prob(x) - p.log_prob(x))))


def frozen_surrogate(theta: torch.Tensor, terms, alpha: float, sigma: float) -> float:
    """E over (z, eps) of a per-time surrogate (score units) whose networks and weights are frozen at THETA0 but
    evaluated at x_t = alpha (μ + s z) + sigma eps, θ = (μ, s), as an integral over the marginal p_θ,t alone:

        L = SG(w_d) δ² + SG(w_a) δ (c − s_0) + x_t SG(b + e c),   δ = s_q − s_0,  c = −eps/sigma,

    with w_d, w_a, b, e functions of x_t given by `terms(s_q, s_0, r)` (r the frozen q_t/p_t). By E[c | x_t] = s_θ
    (Tweedie), SG(w) g′ = (w g)′ − w′ g, and x_t SG(field) having the gradient of the field's potential (1-D),

        E[L](θ) = E_{p_θ,t}[w_d δ² + w_a δ (s_θ − s_0) + B + E s_θ],
        B′ = b − w_d′ δ² + w_a′ δ s_0,   E′ = e − w_a′ δ,

    whose θ-derivative at THETA0 is the surrogate's expected gradient, found without the loss code.
    """
    x = _grid().requires_grad_(True)
    q, p0 = TEACHER.noised(alpha, sigma), student(torch.tensor(THETA0, dtype=torch.float64)).noised(alpha, sigma)
    s_q, s_0 = q.score(x)[:, 0], p0.score(x)[:, 0]
    w_d, w_a, b, e = (torch.as_tensor(v, dtype=torch.float64).expand(len(x))
                      for v in terms(s_q, s_0, torch.exp(q.log_prob(x) - p0.log_prob(x))))
    dw_d, dw_a = (torch.autograd.grad(w.sum(), x, retain_graph=True)[0][:, 0] if w.requires_grad
                  else torch.zeros_like(w) for w in (w_d, w_a))
    delta = s_q - s_0
    big_b, big_e = (torch.cat([f.new_zeros(1), torch.cumulative_trapezoid(f, x[:, 0])]).detach()
                    for f in (b - dw_d * delta**2 + dw_a * delta * s_0, e - dw_a * delta))
    x, s_0, delta, w_d, w_a = (v.detach() for v in (x, s_0, delta, w_d, w_a))
    p = student(theta).noised(alpha, sigma)
    s_theta = p.score(x)[:, 0]
    integrand = w_d * delta**2 + w_a * delta * (s_theta - s_0) + big_b + big_e * s_theta
    return float(torch.trapezoid(torch.exp(p.log_prob(x)) * integrand, x[:, 0]))


def finite_difference(fn, theta0=THETA0, eps: float = 1e-5) -> torch.Tensor:
    """Central differences of a scalar function of θ."""
    grad = []
    for i in range(len(theta0)):
        up, down = list(theta0), list(theta0)
        up[i] += eps
        down[i] -= eps
        grad.append((fn(torch.tensor(up, dtype=torch.float64)) - fn(torch.tensor(down, dtype=torch.float64))) / (2 * eps))
    return torch.tensor(grad, dtype=torch.float64)


def quadrature_batch(theta: torch.Tensor, alpha: float, sigma: float, n: int = 96):
    """Gauss-Hermite nodes over (z, eps) as a batch: x0 = μ + s z, x_t = alpha x0 + sigma eps, with frozen-θ
    networks evaluated at x_t (teacher and student denoisers, the exact logit = log q_t/p_t), and per-sample
    weights that turn a batch mean into the expectation."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    weights = torch.tensor(weights / math.sqrt(2 * math.pi), dtype=torch.float64)
    nodes = torch.tensor(nodes, dtype=torch.float64)
    z, eps = torch.meshgrid(nodes, nodes, indexing="ij")
    w = (weights[:, None] * weights[None, :]).flatten()
    x0 = (theta[0] + theta[1] * z.flatten())[:, None]
    x_t = alpha * x0 + sigma * eps.flatten()[:, None]
    frozen = student(theta.detach())
    batch = dict(
        x0=x0, x_t=x_t, alpha_t=alpha, sigma_t=sigma,
        d_teacher=TEACHER.denoiser(x_t, alpha, sigma), d_fake=frozen.denoiser(x_t, alpha, sigma),
        logit=TEACHER.noised(alpha, sigma).log_prob(x_t) - frozen.noised(alpha, sigma).log_prob(x_t),
    )
    return batch, w * len(w)


def surrogate_gradient(loss_fn, alpha: float, sigma: float, units: float, **options) -> torch.Tensor:
    """θ-gradient of E[loss_fn(...)] at THETA0, the loss in its natural units times `units`."""
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    batch, w = quadrature_batch(theta, alpha, sigma)
    loss, _ = loss_fn(**batch, weight=w * units, **options)
    (grad,) = torch.autograd.grad(loss, theta)
    return grad


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())
