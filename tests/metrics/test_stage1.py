"""The collapse rule on turntable frames and the ratio statistics of a stage-1 log."""
import torch

from ui3d.metrics import stage1


def frames_with_square(side: int, size: int = 64, n: int = 3, color=(0.2, 0.4, 0.9)) -> torch.Tensor:
    """White frames with a centred coloured square of `side` pixels."""
    frames = torch.ones(n, size, size, 3)
    lo = (size - side) // 2
    frames[:, lo:lo + side, lo:lo + side] = torch.tensor(color)
    return frames


def test_an_object_like_the_teachers_is_no_collapse():
    frames = frames_with_square(40)  # 39 % of the frame, away from the border: a ball's size
    assert stage1.collapse(frames) is None
    cover, border = stage1.coverage(frames)
    assert abs(cover - 40**2 / 64**2) < 1e-6 and border == 0.0


def test_a_nerf_that_fills_its_box_is_filled():
    assert stage1.collapse(frames_with_square(64)) == "filled"
    assert stage1.collapse(frames_with_square(56)) == "filled"  # 77 % of the frame
    frame = torch.full((3, 64, 64, 3), 0.3)
    frame[:, 8:56, 8:56] = 1.0  # a hollow frame: 44 % covered, all of the border
    assert stage1.coverage(frame)[0] < stage1.FILLED_COVERAGE and stage1.collapse(frame) == "filled"
    band = torch.ones(3, 64, 64, 3)
    band[:, 17:47] = 0.3  # an object too wide for the frame: 47 % covered, a quarter of the border
    assert stage1.collapse(band) is None


def test_reference_coverage_is_the_largest_ground_truth_object_of_the_category():
    """The ball (radius 0.5 in its widest variant) covers about half a frame at the eval framing, a cone (thin
    top) much less; a closer camera makes the same object larger."""
    ball, cone = stage1.reference_coverage("ball", 4), stage1.reference_coverage("cone", 4)
    assert 0.4 < ball < 0.6 and cone < 0.6 * ball
    assert stage1.reference_coverage("ball", 4, distance=1.0) > 1.3 * ball


def test_a_nerf_that_vanished_is_vanished():
    assert stage1.collapse(torch.ones(3, 64, 64, 3)) == "vanished"
    assert stage1.collapse(frames_with_square(4)) == "vanished"  # 0.4 % of the frame
    assert stage1.collapse(frames_with_square(8)) is None


def test_codec_noise_is_background_and_the_background_colour_is_honoured():
    noisy = (torch.ones(2, 64, 64, 3) - 0.03 * torch.rand(2, 64, 64, 3))
    assert stage1.coverage(noisy)[0] == 0.0
    black = torch.zeros(2, 64, 64, 3)
    black[:, 24:40, 24:40] = 1.0
    assert stage1.collapse(black, background=(0.0, 0.0, 0.0)) is None
    assert stage1.collapse(black) == "filled"  # on a white background the black is foreground


def test_ratio_statistics_count_steps_at_a_clamp_after_the_warm_start(tmp_path):
    path = tmp_path / "metrics.csv"
    lines = ["epoch,step,train/at_clamp,train/h,train/loss"]
    for step in range(20):
        at_clamp = 1.0 if step in (0, 1, 12) else 0.0  # two in the warm start, one after
        lines.append(f"0,{step},{at_clamp},{0.5 + 0.1 * step},1.0")
    lines.append("0,19,,,")  # a row without training scalars (validation)
    path.write_text("\n".join(lines) + "\n")
    rows = stage1.read_metrics(path)
    assert len(rows) == 20 and rows[3]["h"] == 0.8
    stats = stage1.ratio_statistics(rows, start_step=10)
    assert stats["steps"] == 10 and stats["at_clamp"] == 0.1
    h = [0.5 + 0.1 * s for s in range(10, 20)]
    assert abs(stats["h_mean"] - sum(h) / 10) < 1e-9 and stats["h_p10"] == h[1] and stats["h_p90"] == h[9]
    assert stage1.ratio_statistics([{"step": 1.0, "loss": 2.0}]) is None


def test_ratio_statistics_add_the_spread_of_h_inside_each_step():
    # two steps whose batch means are 1 but whose views are weighted 0.5 / 1.5 (sd 0.5) and 0.8 / 1.2 (sd 0.2)
    rows = [{"step": 0.0, "at_clamp": 0.0, "h": 1.0, "h_sd": 0.5}, {"step": 1.0, "at_clamp": 0.0, "h": 1.0, "h_sd": 0.2}]
    stats = stage1.ratio_statistics(rows)
    views = [0.5, 1.5, 0.8, 1.2]
    total = (sum((v - 1.0) ** 2 for v in views) / len(views)) ** 0.5
    assert abs(stats["h_std"] - total) < 1e-9 and abs(stats["h_within"] - ((0.25 + 0.04) / 2) ** 0.5) < 1e-9
    assert stats["h_p10"] == stats["h_p90"] == 1.0  # the step means alone do not spread
    assert stage1.ratio_statistics([{"step": 0.0, "at_clamp": 0.0, "h": 1.0}])["h_within"] is None  # older logs
