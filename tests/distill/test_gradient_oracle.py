"""The losses' θ-gradients against finite differences of the quantities they claim to minimise (DESIGN §3.2)."""
import pytest

from ui3d.distill.oracle import (
    SIGMAS, alpha_sigma, d_f, finite_difference, frozen_surrogate, rel_err, surrogate_gradient, j_t,
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
    if detach_ratio:  # the oracle the paper form is checked against, checked itself: on this loss it gives ∇J_t
        oracle = finite_difference(lambda th: frozen_surrogate(th, exact_terms(div), alpha, sigma))
        assert rel_err(oracle, fd) < 1e-6, (oracle, fd)


def exact_terms(div):
    """The exact loss with a detached ratio and the DI-type term, as `frozen_surrogate` terms (DESIGN §3.2)."""
    def terms(s_q, s_0, r):
        delta, h, rh1 = s_q - s_0, div.h(r), div.h_prime_r(r)
        return h - rh1, -2 * h, -div.c2(r) * delta**3 + 2 * rh1 * delta**2 * s_0, -2 * rh1 * delta**2
    return terms


def test_detached_ratio_without_di_term_is_wrong_by_exactly_that_term():
    """The paper's fkl (C1 = −r: half the exact SIM weight, no DI-type term) misses ∇J_t by the DI-type term
    x_t·SG(−2r δ (δ·(c − s_p))), whose gradient the frozen-surrogate oracle gives; the miss is not small."""
    alpha, sigma = alpha_sigma(0.6)
    fd = finite_difference(lambda th: j_t(th, divergences.get("fkl"), alpha, sigma))
    paper = surrogate_gradient(
        losses.uniinstruct, alpha, sigma, units=losses.exact_units("uniinstruct", alpha, sigma),
        divergence="fkl", form="paper", logit_clamp=None,
    )

    def di_term(s_q, s_0, r):
        return 0.0, 0.0, 2 * r * (s_q - s_0) ** 2 * s_0, -2 * r * (s_q - s_0) ** 2

    missing = finite_difference(lambda th: frozen_surrogate(th, di_term, alpha, sigma))
    assert rel_err(2 * paper + missing, fd) < 1e-3
    assert rel_err(2 * paper, fd) > 0.1 and missing.norm() > 0.1 * fd.norm()


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


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("table5", [False, True])
@pytest.mark.parametrize("name", DIVERGENCES)
def test_paper_form_gradient_matches_the_frozen_surrogate_oracle(name, table5, sigma):
    """Eq. 3.6, −[SG(C1) δ·(s_p − c) + SG(C2 ‖δ‖² δ)·x_t] in score units, has the expected gradient that
    `frozen_surrogate` computes from the marginal p_θ,t (Tweedie and 1-D potentials), not from the loss code."""
    div = divergences.get(name, table5=table5)
    alpha, sigma = alpha_sigma(sigma)
    oracle = finite_difference(lambda th: frozen_surrogate(
        th, lambda s_q, s_0, r: (0.0, div.c1(r), -div.c2(r) * (s_q - s_0) ** 3, 0.0), alpha, sigma))
    got = surrogate_gradient(
        losses.uniinstruct, alpha, sigma, units=losses.exact_units("uniinstruct", alpha, sigma), divergence=name,
        form="paper", table5=table5, logit_clamp=None,
    )
    assert rel_err(got, oracle) < 1e-3, (got, oracle)
