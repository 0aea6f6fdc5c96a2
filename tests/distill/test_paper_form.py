"""What the paper's Eq. 3.5–3.6 (`form: paper`) leaves out of the exact loss, pinned for every f: with the DI-type
stand-in for the ratio's gradient (`detach_ratio`, `ratio_gradient: di`),

    exact = paper + (h − r h′)‖δ‖² − r h′ δ·(c − s_p) + x_t·SG(−2 r h′ (δ·(c − s_p)) δ)

(score units; the paper's SIM weight is C1 = r h′ − 2h where the exact loss has −2h, and its DI-type term lacks
the 2 r h′ part). Only for reverse KL (h′ = 0) is the difference the ‖δ‖² term alone."""
import pytest
import torch

from tests.distill.linear_problem import linear_problem
from ui3d import divergences
from ui3d.diffusion.denoiser import expand_like
from ui3d.distill import losses


@pytest.mark.parametrize("name", divergences.names())
def test_exact_is_paper_plus_the_terms_it_leaves_out(name):
    p = linear_problem(batch=6, dim=4, scale=0.4)  # its logit puts r away from 1, so h′ matters
    x0, x_t, alpha, sigma, d_q, d_p, logit = (p[k] for k in ("x0", "x_t", "alpha", "sigma", "d_teacher", "d_fake", "logit"))
    common = dict(logit=logit, divergence=name, logit_clamp=None)
    exact, _ = losses.uniinstruct(x0, x_t, alpha, sigma, d_q, d_p, form="exact", detach_ratio=True,
                                  ratio_gradient="di", **common)
    paper, _ = losses.uniinstruct(x0, x_t, alpha, sigma, d_q, d_p, form="paper", **common)
    div = divergences.get(name)
    r = losses.ratio_from_logit(logit, None)
    h, rh1 = div.h(r), div.h_prime_r(r)
    delta, c_minus_sp = d_q - d_p, x0 - d_p
    dd, dc = losses.per_sample_sum(delta**2), losses.per_sample_sum(delta * c_minus_sp)
    unit = expand_like(alpha / sigma**2, x0)
    left_out = (h - rh1) * dd - rh1 * dc + losses.per_sample_sum(x_t * (expand_like(-2 * rh1 * dc, x0) * delta * unit).detach())
    rebuilt = paper + left_out.mean()
    torch.testing.assert_close(exact, rebuilt, rtol=1e-10, atol=1e-12)
    grads = [torch.autograd.grad(v, x0, retain_graph=True)[0] for v in (exact, rebuilt)]
    torch.testing.assert_close(*grads, rtol=1e-10, atol=1e-12)
    if name == "rkl":
        assert torch.allclose(rh1, torch.zeros_like(rh1))
    else:
        assert (rh1.abs() > 1e-3).any()  # the extra terms are really there for every other f
