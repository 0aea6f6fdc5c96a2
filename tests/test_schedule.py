import pytest

from ui3d.schedule import scheduled


def test_constant_and_linear_schedule():
    assert scheduled(3, 100) == 3.0
    sched = [100, 1.0, 0.0, 300]
    assert [scheduled(sched, s) for s in (0, 100, 200, 300, 1000)] == [1.0, 1.0, 0.5, 0.0, 0.0]


def test_bad_schedule_says_its_shape():
    with pytest.raises(ValueError, match=r"\[start_step, start_value, end_value, end_step\]"):
        scheduled([1, 2, 3], 0)
