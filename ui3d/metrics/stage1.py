"""Health of a stage-1 run, read from what it wrote: did the NeRF collapse (its turntable), and what did the
density ratio do (its per-step `metrics.csv`)?

The collapse rule, on the test turntable (30 orbit frames at the eval framing: distance 1.3, fovy 55°, over the
config's solid background):

- a pixel is foreground when some channel differs from the background by more than `FOREGROUND_TOL`
  (above the video codec's noise);
- **filled**: the foreground covers more than `FILLED_COVERAGE` of the frames, or more than `FILLED_BORDER` of
  the frames' outermost pixel ring, averaged over the frames. Every ground-truth object of the embedded teacher
  (10 categories × 3 variants) covers at most 51 % of such a frame (the ball) and never touches its border;
  a NeRF that fills its box [−0.7, 0.7]³ covers all of it, border included. (An object merely too large for
  the frame, touching part of the border, is not a collapse: the classifier scores it.)
- **vanished**: the foreground covers less than `VANISHED_COVERAGE` of the frames.

Short of a collapse, a NeRF can still be too large: `reference_coverage` renders the ground-truth objects of a
category at the same framing, and a run's coverage over the largest of them is its **size ratio** (1: as large
as the largest ground-truth object of its category; the suite's NeRFs bounded by the box alone measured 0.7–1.9).
A NeRF bounded by `geometry.sphere_radius` 0.5 (the embedded configs) cannot fill its box: filling its sphere, it
covers about half a frame and shows as a ball, caught by the classifier and by its size ratio (≈ 2–4 for any
category but the ball).
"""
from __future__ import annotations

import csv
import functools
import math
import statistics
from pathlib import Path

import torch
from torch import Tensor

FOREGROUND_TOL = 0.05
FILLED_COVERAGE = 0.6
FILLED_BORDER = 0.5
VANISHED_COVERAGE = 0.01


def foreground(frames: Tensor, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Tensor:
    """[N, H, W] mask of the pixels of frames [N, H, W, 3] in [0, 1] that are not the background colour."""
    return (frames - frames.new_tensor(background)).abs().amax(-1) > FOREGROUND_TOL


def coverage(frames: Tensor, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[float, float]:
    """(foreground fraction of the frames, foreground fraction of their outermost pixel ring)."""
    fg = foreground(frames, background).float()
    ring = torch.cat([fg[:, 0], fg[:, -1], fg[:, 1:-1, 0], fg[:, 1:-1, -1]], dim=1)
    return float(fg.mean()), float(ring.mean())


def collapse(frames: Tensor, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> str | None:
    """`"filled"`, `"vanished"` or None by the module's rule."""
    cover, border = coverage(frames, background)
    if cover > FILLED_COVERAGE or border > FILLED_BORDER:
        return "filled"
    return "vanished" if cover < VANISHED_COVERAGE else None


@functools.lru_cache(maxsize=None)
def reference_coverage(category: str, n_frames: int = 30, elevation_deg: float = 15.0, distance: float = 1.3,
                       fovy_deg: float = 55.0, resolution: int = 64) -> float:
    """The largest foreground fraction among the embedded teacher's ground-truth objects of `category`
    (every variant, plain red on white), on the turntable orbit a run's test frames use."""
    from ui3d.data.cameras import orbit_cameras
    from ui3d.teachers.embedded.dataset import render_object
    from ui3d.teachers.embedded.objects import ObjectSpec
    from ui3d.teachers.embedded.shapes import num_variants

    cameras = orbit_cameras(n_frames, elevation_deg, distance, fovy_deg)
    return max(coverage(render_object(ObjectSpec(category, v, "red", "plain"), cameras, resolution)
                        .permute(0, 2, 3, 1))[0] for v in range(num_variants(category)))


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a Lightning CSV log that carry training scalars, as floats keyed without the `train/`
    prefix (plus `step`)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {k.removeprefix("train/"): float(v) for k, v in row.items() if v not in ("", None)}
            if any(k != "step" and k != "epoch" for k in values):
                rows.append(values)
    return rows


def ratio_statistics(rows: list[dict[str, float]], start_step: int = 0) -> dict[str, float] | None:
    """What the density ratio did from `start_step` on (e.g. after an rkl warm start), from per-step logs of a
    Uni-Instruct guidance: `at_clamp` the fraction of steps where the logit hit its clamp or the normalised r its
    clip; the spread of the loss weight h(r): `h_within` the root-mean-square of its sd inside a step's batch
    (`h_sd`, logged per step; 0 with one view per step, and None for logs without it), `h_std` its sd over every
    view of every step (between steps and within them), the 10th and 90th percentiles `h_p10`, `h_p90` of the
    steps' batch means, and `h_mean`; None when the log has no ratio."""
    rows = [r for r in rows if r.get("step", 0) >= start_step and "h" in r and "at_clamp" in r]
    if not rows:
        return None
    h = sorted(r["h"] for r in rows)
    within = [r["h_sd"] for r in rows if "h_sd" in r]
    h_within = math.sqrt(statistics.mean(sd**2 for sd in within)) if within else None
    between = statistics.pvariance(h)
    return {"steps": len(rows), "at_clamp": statistics.mean(float(r["at_clamp"] > 0) for r in rows),
            "h_mean": statistics.mean(h), "h_std": math.sqrt(between + (h_within or 0.0) ** 2),
            "h_within": h_within, "h_p10": h[len(h) // 10], "h_p90": h[min(len(h) - 1, (9 * len(h)) // 10)]}
