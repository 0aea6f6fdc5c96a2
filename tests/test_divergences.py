"""The f family: closed forms against autograd derivatives of f, and the identities that tie them together."""
import pytest
import torch

from ui3d import divergences

NAMES = ["fkl", "rkl", "jkl", "chi2", "js", "hellinger", "softrkl"]
R = torch.exp(torch.linspace(-3, 3, 41, dtype=torch.float64))  # r from 0.05 to 20


def derivative(fn, r: torch.Tensor, order: int) -> torch.Tensor:
    r = r.clone().requires_grad_(True)
    out = fn(r)
    for _ in range(order):
        if not out.requires_grad:  # constant so far: every further derivative is zero
            return torch.zeros_like(r).detach()
        (out,) = torch.autograd.grad(out.sum(), r, create_graph=True, allow_unused=True)
        out = torch.zeros_like(r) if out is None else out
    return out.detach()


def test_family_has_the_required_members():
    assert set(NAMES) <= set(divergences.names())


@pytest.mark.parametrize("name", NAMES)
def test_f_vanishes_at_one_and_is_convex(name):
    div = divergences.get(name)
    assert abs(float(div.f(torch.ones(1, dtype=torch.float64)))) < 1e-12
    assert bool((derivative(div.f, R, 2) > 0).all())
    # convexity as a chord inequality too: f(mid) <= mean of f at the ends
    a, b = R[:-1], R[1:]
    assert bool((div.f((a + b) / 2) <= (div.f(a) + div.f(b)) / 2 + 1e-12).all())


@pytest.mark.parametrize("name", NAMES)
def test_coefficients_equal_derivatives_of_f(name):
    div = divergences.get(name)
    f2, f3, f4 = (derivative(div.f, R, k) for k in (2, 3, 4))
    torch.testing.assert_close(div.h(R), R**2 * f2)
    torch.testing.assert_close(div.c1(R), R**3 * f3)
    torch.testing.assert_close(div.c2(R), 2 * R**2 * f2 + 4 * R**3 * f3 + R**4 * f4)


@pytest.mark.parametrize("name", NAMES)
def test_identities_c1_c2_from_h(name):
    div = divergences.get(name)
    h1, h2 = derivative(div.h, R, 1), derivative(div.h, R, 2)
    torch.testing.assert_close(div.c1(R), R * h1 - 2 * div.h(R))
    torch.testing.assert_close(div.c2(R), R**2 * h2)
    torch.testing.assert_close(div.h_prime_r(R), R * h1)


@pytest.mark.parametrize("name", NAMES)
def test_mode_seeking_is_a_finite_limit_of_f_over_r(name):
    """The Table 5 column, from f itself: lim f(r)/r as r → ∞ is finite (mode seeking) or grows without bound."""
    f = divergences.get(name).f
    r = torch.tensor([1e6, 1e8, 1e10], dtype=torch.float64)
    ratio = f(r) / r
    growing = bool((ratio[2] - ratio[1]) > 1.0 and (ratio[1] - ratio[0]) > 1.0)
    assert divergences.get(name).mode_seeking == (not growing)
    if not growing:
        assert (ratio[2] - ratio[1]).abs() < 1e-3  # settled


def test_paper_table5_only_on_request():
    r = torch.tensor([0.5, 2.0], dtype=torch.float64)
    assert torch.equal(divergences.get("rkl").c1(r), torch.tensor([-2.0, -2.0], dtype=torch.float64))
    assert torch.equal(divergences.get("rkl", table5=True).c1(r), torch.tensor([-1.0, -1.0], dtype=torch.float64))
    assert torch.equal(divergences.get("jkl", table5=True).c1(r), -r - 1)
    # where the table is right, the option changes nothing; the paper's wrong values equal −r²f''
    torch.testing.assert_close(divergences.get("fkl", table5=True).c1(r), divergences.get("fkl").c1(r))
    for name in ("rkl", "jkl"):
        torch.testing.assert_close(divergences.get(name, table5=True).c1(r), -divergences.get(name).h(r))


def test_unknown_divergence_names_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'fkl'"):
        divergences.get("fk1")
