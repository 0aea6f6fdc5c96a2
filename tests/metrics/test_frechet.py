"""The Fréchet distance against scipy's `sqrtm` formula and a closed form, in both the N ≤ D and N > D routes."""
import numpy as np
import pytest
import scipy.linalg

from ui3d.metrics.frechet import frechet_distance


def sqrtm_reference(a, b):
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross)


@pytest.mark.parametrize("n_a, n_b", [(400, 300), (10, 12), (300, 20)])
def test_matches_sqrtm(n_a, n_b):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n_a, 32)) @ rng.normal(size=(32, 32))
    b = 1.3 * rng.normal(size=(n_b, 32)) + 0.2
    assert frechet_distance(a, b) == pytest.approx(sqrtm_reference(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_closed_form_for_scaled_whitened_sets():
    """Whitened x and s·x + m: d² = ‖m‖² + D (1 − s)²."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 8))
    x = (x - x.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    m = np.arange(8.0)
    assert frechet_distance(x, 2.0 * x + m) == pytest.approx((m**2).sum() + 8 * 1.0)
