"""The ratio-by-view diagnostic: how much of the discriminator logit's variance the view explains."""
import pytest
import torch

from ui3d.benchmarks import ratio_views


def test_view_share_and_correlation_of_the_logit():
    # one t, 3 cameras × 2 draws: camera means 0, 1, 2; each draw ±0.5 about its mean
    logits = torch.tensor([[[-0.5, 0.5], [0.5, 1.5], [1.5, 2.5]]])
    row = ratio_views.decompose(logits, torch.tensor([0.1, 0.5, 0.9]))[0]
    between, within = 2 / 3, 0.25
    assert row["view_share"] == pytest.approx(between / (between + within))
    assert row["corr"] == pytest.approx(1.0) and row["mean"] == pytest.approx(1.0)
    noise_only = ratio_views.decompose(torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]), torch.tensor([0.2, 0.4]))[0]
    assert noise_only["view_share"] == 0.0
    assert ratio_views.decompose(logits, torch.tensor([0.9, 0.5, 0.1]))[0]["corr"] == pytest.approx(-1.0)


def test_refuses_a_run_without_a_stage_one_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match="has no stage-1 checkpoint"):
        ratio_views.main([str(tmp_path)])
