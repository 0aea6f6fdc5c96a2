"""The distill2d benchmark's long part: its table over seeds (mean ± sd, each student's FID over the teacher's of
the same seed) and, with one seed, the table it always wrote."""
import statistics
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from ui3d.benchmarks import distill2d
from ui3d.benchmarks.distill2d import CHUNK, long_summary, long_table

REPO = Path(__file__).resolve().parents[2]


def digits(fd_clf, precision, recall, seconds, fid, **more) -> dict:
    return {"fd_clf": fd_clf, "precision": precision, "recall": recall, "seconds": seconds, "fid": fid, **more}


def test_one_seed_writes_the_table_it_always_wrote():
    """The committed 600-step table (benchmarks/distill2d-long.md) from its own numbers."""
    teacher = [digits(0.48, 0.912, 0.967, 119, 26.26)]
    students = {"f-distill-fkl.yaml": [digits(0.46, 0.955, 0.831, 669, 33.61, fid_ratio=33.61 / 26.26)],
                "uniinstruct-fkl-gan.yaml": [digits(0.46, 0.943, 0.881, 804, 28.35, fid_ratio=28.35 / 26.26)]}
    committed = (REPO / "benchmarks" / "distill2d-long.md").read_text().splitlines()
    table = [line for line in committed if line.startswith("|")]
    assert long_summary(8.79, teacher, students, 600, [0]).splitlines() == table


def finished(seeds, teacher_fids, student_fids, n=CHUNK) -> dict:
    """What `run_tasks` hands `long_table`: runs and teacher samples with their metrics, Inception features whose
    mean is the FID the stand-in `fid` gives (real digits: the floor 9)."""
    done = {f"inception real {i}": torch.full((CHUNK, 1), 9.0) for i in range(0, 2 * n, CHUNK)}
    for seed, value in teacher_fids.items():
        done[f"teacher@35 s{seed}"] = (None, {"fd_clf": 0.5 + seed, "precision": 0.9, "recall": 0.95}, 100.0)
        done[f"inception teacher@35 s{seed} 0"] = torch.full((n, 1), value)
    for seed, value in zip(seeds, student_fids):
        done[f"long c.yaml s{seed}"] = (Path("run"), {"samples": {"fd_clf": 0.4 + seed, "precision": 0.8 + seed / 100,
                                                                  "recall": 0.9}}, 600.0 + 30 * seed)
        done[f"inception long c.yaml s{seed} 0"] = torch.full((n, 1), value)
    return done


@pytest.fixture
def mean_fid(monkeypatch):
    monkeypatch.setattr("ui3d.metrics.fid.fid", lambda features, ref: float(features.mean()))


def args(seeds, once=False) -> Namespace:
    return Namespace(fid_samples=CHUNK, long_seeds=seeds, long_configs=["c.yaml"], long_steps=600,
                     long_teacher_once=once)


def test_three_seeds_give_mean_and_sd_and_each_student_beside_its_own_teacher(mean_fid):
    text = long_table(args([0, 1, 2]), finished([0, 1, 2], {0: 26.0, 1: 28.0, 2: 30.0}, [25.0, 29.0, 27.0]))
    ratios = [25 / 26, 29 / 28, 27 / 30]
    table, title, per_seed, verdict = text.split("\n\n")
    rows = {line.split(" | ")[0]: line for line in table.splitlines()}
    assert rows["| teacher (DDIM), NFE 35"] == ("| teacher (DDIM), NFE 35 | — | 1.50 ± 1.00 | 0.900 ± 0.000 "
                                                "| 0.950 ± 0.000 | 28.00 ± 2.00 | 1.00 | (100 s sampling) |")
    assert rows["| c.yaml"] == (f"| c.yaml | 600 | 1.40 ± 1.00 | 0.810 ± 0.010 | 0.900 ± 0.000 | 27.00 ± 2.00 "
                                f"| {statistics.mean(ratios):.2f} ± {statistics.stdev(ratios):.2f} | 630 |")
    assert rows["| real test digits (the floor)"].startswith("| real test digits (the floor) | — | — | — | — | 9.00 |")
    assert title == "Inception FID per seed:"
    assert per_seed.splitlines()[2:] == ["| teacher (DDIM), NFE 35 | 26.00 | 28.00 | 30.00 |",
                                         "| c.yaml | 25.00 | 29.00 | 27.00 |"]
    assert verdict.endswith("c.yaml: 2 of 3.")  # 25 < 26 and 27 < 30; 29 > 28


def test_teacher_sampled_once_is_every_seed_s_yardstick(mean_fid):
    text = long_table(args([0, 1, 2], once=True), finished([0, 1, 2], {0: 26.0}, [25.0, 29.0, 27.0]))
    ratios = [25 / 26, 29 / 26, 27 / 26]
    assert "| teacher (DDIM), NFE 35 | — | 0.50 | 0.900 | 0.950 | 26.00 | 1.00 | (100 s sampling) |" in text
    assert f"| 27.00 ± 2.00 | {statistics.mean(ratios):.2f} ± {statistics.stdev(ratios):.2f} | 630 |" in text
    assert text.endswith("c.yaml: 1 of 3.")


def test_seeds_make_one_training_per_config_and_seed_and_one_teacher_per_seed():
    a = Namespace(**{**vars(args([0, 1, 2])), "long_configs": ["a.yaml", "b.yaml"]}, root=Path("unused"))
    tasks = distill2d.long_tasks(a)
    runs = sorted(k for k in tasks if k.startswith("long "))
    assert runs == [f"long {c} s{s}" for c in ("a.yaml", "b.yaml") for s in (0, 1, 2)]
    assert tasks["long b.yaml s2"].args[3][-1] == "seed=2" and tasks["long b.yaml s2"].args[2] == "b-600-s2"
    assert sorted(k for k in tasks if k.startswith("teacher@")) == ["teacher@35 s0", "teacher@35 s1", "teacher@35 s2"]
    a.long_teacher_once = True
    assert [k for k in distill2d.long_tasks(a) if k.startswith("teacher@")] == ["teacher@35 s0"]
