"""What the training loops share (teacher training, 2D distillation, 3D runs): seeds derived from a run's seed and
a step, the exponential moving average of weights, and parameters held out of one update's graph."""
from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import torch
from torch import Tensor

SEED_STRIDE = 1_000_003
"""A prime: the seeds of run seed s are s · SEED_STRIDE + offset, apart from run seed s + 1's for a million steps."""


def mix_seed(seed: int, offset: int, stride: int = SEED_STRIDE) -> int:
    """seed · stride + offset: the seed of item `offset` (a step, an epoch, a rank's share of a step) of the stream
    a run seeded `seed` draws from; a loop with several streams gives each its own stride. Resumed runs depend on
    these values: they must never change."""
    return seed * stride + offset


def ema_decay(max_decay: float, step: int) -> float:
    """min(max_decay, (1 + step) / (10 + step)): a short memory early in training, `max_decay` later."""
    return min(max_decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(averages: Iterable[Tensor], values: Iterable[Tensor], decay: float) -> None:
    """average ← decay · average + (1 − decay) · value, in place; integer tensors (counters) are copied."""
    for average, value in zip(averages, values, strict=True):
        if value.is_floating_point():
            average.lerp_(value, 1 - decay)
        else:
            average.copy_(value)


@contextmanager
def frozen(params: Iterable[torch.nn.Parameter]):
    """Parameters left out of the autograd graph of the enclosed calls (generator-side network evaluations
    must not train the fake score or the discriminator); their flags are restored on exit."""
    params = list(params)
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
