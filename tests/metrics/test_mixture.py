"""Mixture metrics on the 8-mode ring: exact samples score at the floor, a set collapsed onto one mode does not."""
import pytest
import torch

from ui3d.metrics.mixture import (
    mixture_report,
    mixture_std,
    mmd,
    mmd_floor,
    mode_assignment,
    mode_mass,
    mode_radius,
    mode_weight_tv,
    modes_covered,
    precision_recall,
)
from ui3d.teachers.gaussians import GaussianMixture

N = 1000


@pytest.fixture(scope="module")
def ring():
    return GaussianMixture.ring(n_modes=8, radius=2.0, std=0.1)


@pytest.fixture(scope="module")
def exact(ring):
    return ring.sample(N, torch.Generator().manual_seed(100))


@pytest.fixture(scope="module")
def collapsed(ring):
    """Every sample in mode 0, with that mode's exact spread: mode collapse."""
    noise = torch.randn(N, 2, generator=torch.Generator().manual_seed(101), dtype=torch.float64)
    return ring.means[0] + 0.1 * noise


def test_mmd_exact_is_at_the_floor_and_collapse_far_above(ring, exact, collapsed):
    bandwidths = (0.15, 0.5, 1.5)
    floor = mmd_floor(ring, N, seeds=range(4), bandwidths=bandwidths)
    reference = ring.sample(N, torch.Generator().manual_seed(7))
    good, bad = mmd(exact, reference, bandwidths), mmd(collapsed, reference, bandwidths)
    assert good.bandwidths == bandwidths and len(good.values) == 3
    assert good.total == pytest.approx(sum(good.values))
    assert abs(good.total) < 4 * floor.total
    assert bad.total > 100 * floor.total and min(bad.values) > 0


def test_mmd_default_bandwidths_follow_the_reference_scale(ring, exact):
    result = mmd(exact[:200], exact[200:400])
    assert result.bandwidths[-1] == pytest.approx(mixture_std(ring), rel=0.1)


def test_mixture_std_is_exact():
    mix = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([0.04, 0.04]))
    assert mixture_std(mix) == pytest.approx((0.04 + 0.5) ** 0.5)  # x: 0.04 + 1, y: 0.04, pooled over d = 2


def test_mode_assignment_marks_far_samples_off_mode(ring):
    radius = float(mode_radius(ring)[0])
    assert radius == pytest.approx(0.1 * 3.4393, rel=1e-3)  # 99.73% of a 2-D Gaussian, i.e. ±3σ mass
    x = torch.stack([ring.means[3], ring.means[5] * (1 + 0.9 * radius / 2), torch.zeros(2, dtype=torch.float64)])
    assert mode_assignment(x, ring).tolist() == [3, 5, -1]


def test_modes_and_weights(ring, exact, collapsed):
    assert modes_covered(exact, ring) == 8 and modes_covered(collapsed, ring) == 1
    good, bad = mode_weight_tv(exact, ring), mode_weight_tv(collapsed, ring)
    assert good["tv"] < 0.06 and good["off_mode"] < 0.02
    assert bad["tv"] == pytest.approx(7 / 8)


def test_mode_weight_tv_of_unequal_weights_and_no_on_mode_sample():
    mix = GaussianMixture.ring(n_modes=4, weights=torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=torch.float64))
    assert mode_weight_tv(mix.sample(4000, torch.Generator().manual_seed(0)), mix)["tv"] < 0.03
    assert mode_weight_tv(torch.zeros(5, 2, dtype=torch.float64), mix) == {"tv": 1.0, "off_mode": 1.0}


def test_mode_mass_is_each_modes_share_of_all_samples():
    """50:1 modes at (±2, 0): 100 samples on the heavy mode, 3 on the light one, 2 between them (off-mode)."""
    mix = GaussianMixture.ring(n_modes=2, weights=torch.tensor([50.0, 1.0], dtype=torch.float64))
    jitter = 0.05 * torch.randn(105, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.cat([mix.means[0].expand(100, 2), mix.means[1].expand(3, 2), torch.zeros(2, 2, dtype=torch.float64)])
    torch.testing.assert_close(mode_mass(x + jitter, mix), torch.tensor([100 / 105, 3 / 105], dtype=torch.float64))
    assert modes_covered(x + jitter, mix) == 2  # 3 ≥ 10% of the light mode's expected 105 / 51 samples
    assert modes_covered(x[:100] + jitter[:100], mix) == 1


def test_precision_recall(ring, exact, collapsed):
    reference = ring.sample(N, torch.Generator().manual_seed(8))
    same = precision_recall(reference, exact)
    assert same["precision"] > 0.95 and same["recall"] > 0.95
    bad = precision_recall(reference, collapsed)
    assert bad["precision"] > 0.9 and bad["recall"] < 0.2


def test_mixture_report_has_every_number(ring, exact):
    report = mixture_report(exact[:500], ring, torch.Generator().manual_seed(3))
    expected = {"n", "mmd", "mmd_floor", "modes_covered", "n_modes", "mode_tv", "off_mode", "precision", "recall"}
    assert expected <= report.keys() and sum(k.startswith("mmd@") for k in report) == 3
    assert report["modes_covered"] == report["n_modes"] == 8 and report["n"] == 500
    assert len(report["mode_mass"]) == 8 and report["mode_weight"] == pytest.approx([1 / 8] * 8)
