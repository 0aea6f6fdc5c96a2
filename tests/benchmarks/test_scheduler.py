"""The benchmarks' task scheduler: dependencies, priority order, results handed on."""
import operator
import time

import pytest

from ui3d.benchmarks.common import Task, run_tasks


def test_dependents_get_the_results_they_depend_on():
    tasks = {"a": Task(operator.add, (1, 2)),
             "b": Task(operator.mul, lambda done: (done["a"], 10), ("a",)),
             "c": Task(operator.sub, lambda done: (done["b"], done["a"]), ("a", "b"))}
    done, seconds = run_tasks(tasks, workers=2)
    assert done == {"a": 3, "b": 30, "c": 27}
    assert set(seconds) == set(tasks) and all(s >= 0 for s in seconds.values())


def test_a_free_worker_takes_the_first_ready_task_in_order():
    tasks = {"waits": Task(time.monotonic, (), ("second",)), "first": Task(time.monotonic, ()),
             "second": Task(time.monotonic, ())}
    done, _ = run_tasks(tasks, workers=1)
    assert done["first"] < done["second"] < done["waits"]


def test_an_unknown_dependency_is_refused_before_anything_runs():
    with pytest.raises(KeyError, match="missing"):
        run_tasks({"a": Task(operator.neg, (1,), ("missing",))}, workers=1)


def test_every_recipe_has_a_row_with_its_own_ascii_run_tag():
    from pathlib import Path

    from ui3d.benchmarks.distill2d import STUDENTS, _tag

    tags = [_tag(name) for name, _, _ in STUDENTS]
    assert len(set(tags)) == len(tags) and all(t.isascii() and t for t in tags)
    shipped = {p.name for p in (Path(__file__).resolve().parents[2] / "configs" / "distill2d").glob("*.yaml")}
    teachers = {"digits.yaml", "mixture.yaml", "mixture-dropped.yaml", "embedded.yaml"}  # what recipes extend
    assert shipped - teachers == {config for _, config, _ in STUDENTS}
