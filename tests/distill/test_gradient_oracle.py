"""The losses' θ-gradients against finite differences of the quantities they claim to minimise (DESIGN §3.2)."""
import pytest
import torch

from ui3d.distill.oracle import (
    SIGMAS, TEACHER, alpha_sigma, d_f, finite_difference, quadrature_batch, rel_err, student, surrogate_gradient, j_t,
)
from ui3d import divergences
from ui3d.distill import losses

DIVERGENCES = ["fkl", "rkl", "jkl", "chi2", "js", "hellinger", "softrkl"]


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("name", DIVERGENCES)
@pytest.mark.parametrize("detach_ratio", [False, True], ids=["ratio-grad", "detached-ratio+DI-term"])
def test_exact_uniinstruct_matches_finite_difference_of_j_t(name, sigma, detach_ratio):
    div = divergences.get(name)
    alpha, sigma = alpha_sigma(sigma)
    fd = finite_difference(lambda th: j_t(th, div, alpha, sigma))
    auto = surrogate_gradient(
        losses.uniinstruct, alpha, sigma, units=losses.exact_units("uniinstruct", alpha, sigma),
        divergence=name, form="exact", detach_ratio=detach_ratio, logit_clamp=None,
    )
    assert rel_err(auto, fd) < 1e-3, (auto, fd)


def test_detached_ratio_without_di_term_is_wrong():
    """The DI-type term is what makes the detached form exact: dropping it (the paper's fkl) changes the gradient."""
    alpha, sigma = alpha_sigma(0.6)
    fd = finite_difference(lambda th: j_t(th, divergences.get("fkl"), alpha, sigma))
    paper = surrogate_gradient(
        losses.uniinstruct, alpha, sigma, units=losses.exact_units("uniinstruct", alpha, sigma),
        divergence="fkl", form="paper", logit_clamp=None,
    )
    assert rel_err(2 * paper, fd) > 1e-2  # the paper's SIM-only fkl gradient (C1 = −r, so ×2) misses a term


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("name", DIVERGENCES)
def test_f_distill_matches_finite_difference_of_d_f(name, sigma):
    div = divergences.get(name)
    alpha, sigma = alpha_sigma(sigma)
    fd = finite_difference(lambda th: d_f(th, div, alpha, sigma))
    auto = surrogate_gradient(
        losses.f_distill, alpha, sigma, units=losses.exact_units("f-distill", alpha, sigma),
        divergence=name, normalize=False, logit_clamp=None,
    )
    assert rel_err(auto, fd) < 1e-3, (auto, fd)


def test_diff_instruct_is_the_gradient_of_reverse_kl():
    alpha, sigma = alpha_sigma(0.6)
    fd = finite_difference(lambda th: d_f(th, divergences.get("rkl"), alpha, sigma))
    auto = surrogate_gradient(losses.diff_instruct, alpha, sigma, units=1.0)
    assert rel_err(auto, fd) < 1e-3


@pytest.mark.parametrize("table5", [False, True])
@pytest.mark.parametrize("name", DIVERGENCES)
def test_paper_form_is_eq_3_6_as_written(name, table5):
    """−[SG(C1(r)) (s_q − s_p^sg)(s_p^sg − ∇log q_t(x_t|x0)) + SG(C2(r)(s_q − s_p)‖s_q − s_p‖²) x_t], in scores."""
    alpha, sigma = alpha_sigma(0.6)
    div = divergences.get(name, table5=table5)
    theta = torch.tensor((0.3, 1.4), dtype=torch.float64, requires_grad=True)
    batch, w = quadrature_batch(theta, alpha, sigma)
    x0, x_t = batch["x0"], batch["x_t"]
    frozen = student(theta.detach()).noised(alpha, sigma)
    s_q, s_p = TEACHER.noised(alpha, sigma).score(x_t), frozen.score(x_t)
    c = -(x_t - alpha * x0).detach() / sigma**2
    r = torch.exp(batch["logit"]).detach().flatten()
    l_sim = div.c1(r) * ((s_q - s_p) * (s_p - c)).sum(1)
    l_di = (x_t * (div.c2(r)[:, None] * (s_q - s_p) * ((s_q - s_p) ** 2).sum(1, keepdim=True)).detach()).sum(1)
    (expected,) = torch.autograd.grad((w * -(l_di + l_sim)).mean(), theta)

    units = losses.exact_units("uniinstruct", alpha, sigma)
    got = surrogate_gradient(
        losses.uniinstruct, alpha, sigma, units=units, divergence=name, form="paper", table5=table5, logit_clamp=None
    )
    assert rel_err(got, expected) < 1e-9
