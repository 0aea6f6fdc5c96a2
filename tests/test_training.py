"""Seeds derived per step and the EMA of weights, shared by the training loops."""
import pytest
import torch

from ui3d.training import ema_decay, ema_update, mix_seed


def test_mix_seed_keeps_the_seeds_runs_were_started_with():
    """Resumed runs redraw from these seeds: the values the call sites used before the helper existed."""
    assert mix_seed(0, 5) == 5 and mix_seed(3, 17) == 3_000_026
    assert mix_seed(2, 9, stride=7_000_003) == 14_000_015
    from ui3d.systems.distill2d import _rng

    assert _rng(3, 17, 2).initial_seed() == ((3 * 1_000_003 + 17) * 7 + 2) * 1009


def test_mix_seed_streams_of_neighbouring_run_seeds_do_not_meet():
    seeds = {mix_seed(seed, step) for seed in range(4) for step in [*range(5000), *range(999_000, 1_000_003)]}
    assert len(seeds) == 4 * (5000 + 1003)


def test_ema_decay_warms_up_to_its_maximum():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 80) == pytest.approx(81 / 90)
    assert ema_decay(0.999, 10**6) == 0.999


def test_ema_update_averages_floats_and_copies_counters():
    """From 0, n updates towards a constant v at decay d give v (1 − dⁿ); integer buffers follow the value."""
    average, count = torch.zeros(3, dtype=torch.float64), torch.tensor(0)
    value = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    for step in range(5):
        ema_update([average, count], [value, torch.tensor(step)], 0.9)
    torch.testing.assert_close(average, value * (1 - 0.9**5))
    assert count.item() == 4
    with pytest.raises(ValueError):
        ema_update([average], [value, value], 0.9)
