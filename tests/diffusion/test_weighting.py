"""Per-time weights: the truncated-SNR weight of denoiser training and the paper's ½g²(t)/p(t)."""
import pytest
import torch

from ui3d.diffusion.schedules import VPDiscrete
from ui3d.diffusion.weighting import paper_time_weight, truncated_snr_weight

SNR = torch.tensor([0.01, 0.5, 5.0, 50.0], dtype=torch.float64)


@pytest.mark.parametrize("prediction_type, scale, on_d", [
    ("sample", lambda s: 1.0, lambda s: s.clamp(max=5) + 1),
    ("v_prediction", lambda s: s + 1, lambda s: s.clamp(max=5) + 1),
    ("epsilon", lambda s: s, lambda s: s.clamp(max=5)),
])
def test_truncated_snr_weight_on_the_d_error(prediction_type, scale, on_d):
    """Times the target's own scale (‖v err‖² = (snr + 1)‖D err‖², ‖ε err‖² = snr ‖D err‖²), the weight on the D
    error is min(snr, 5) + 1 (min(snr, 5) for ε): plain at high noise (snr < 5), capped at low noise."""
    torch.testing.assert_close(truncated_snr_weight(SNR, prediction_type) * scale(SNR), on_d(SNR))


def test_truncated_snr_weight_names_an_unknown_prediction_type():
    with pytest.raises(ValueError, match="unknown prediction_type 'x0'"):
        truncated_snr_weight(SNR, "x0")


def test_paper_time_weight_turns_the_mean_over_sampled_t_into_half_the_sum_of_g2():
    """t uniform on sample_t's timesteps: E_t[w(t) f(t)] = ½ Σ_t g²(t) f(t) over exactly those timesteps."""
    schedule = VPDiscrete.scaled_linear()
    support = torch.unique(schedule.sample_t(20000, 0.02, 0.5, generator=torch.Generator().manual_seed(0)))
    assert len(support) == int(0.5 * 1000) - int(0.02 * 1000)
    f = torch.cos(support.double() / 100)
    mean = (paper_time_weight(schedule, support, 0.02, 0.5).double() * f).mean()
    torch.testing.assert_close(mean, 0.5 * (schedule.g2(support).double() * f).sum(), rtol=1e-6, atol=0)
    like = torch.zeros(1, dtype=torch.float64)
    assert paper_time_weight(schedule, support, 0.02, 0.5, like).dtype == torch.float64
