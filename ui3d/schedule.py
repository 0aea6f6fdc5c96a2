"""Step-scheduled values, threestudio's `C()`: a number, or `[start_step, start_value, end_value, end_step]`."""
from __future__ import annotations

from typing import Sequence, Union

Scheduled = Union[float, int, Sequence[float]]


def scheduled(value: Scheduled, step: int) -> float:
    """The value of a scheduled quantity at `step`.

    A plain number is constant. `[start_step, start_value, end_value, end_step]` holds `start_value` until
    `start_step`, moves linearly to `end_value` at `end_step`, and holds it after.
    """
    if isinstance(value, (int, float)):
        return float(value)
    if len(value) != 4:
        raise ValueError(f"a schedule is [start_step, start_value, end_value, end_step], got {list(value)}")
    start_step, start_value, end_value, end_step = value
    if end_step <= start_step:
        raise ValueError(f"schedule {list(value)}: end_step must be after start_step")
    frac = min(max((step - start_step) / (end_step - start_step), 0.0), 1.0)
    return float(start_value + frac * (end_value - start_value))
