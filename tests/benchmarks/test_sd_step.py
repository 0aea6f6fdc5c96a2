"""The SD benchmarks' harnesses on the CPU: a row of `sd_step` on the tiny SD shape, and `gpu_smoke`'s refusal
without CUDA."""
import math

import torch

from ui3d.benchmarks import gpu_smoke, sd_step
from ui3d.teachers.random_sd import build_sd_folder


def test_a_step_row_is_timed_with_the_memory_options(tmp_path):
    folder = build_sd_folder(tmp_path, sd_step.WORDS, "tiny")
    seconds, peak = sd_step.measure("uniinstruct", folder, torch.device("cpu"), torch.float32, 2, True, 1)
    assert math.isfinite(seconds) and seconds > 0 and peak is None
    assert sd_step.settings("uniinstruct", True)["enable_attention_slicing"] is True
    assert "enable_attention_slicing" not in sd_step.settings("vsd", False)


def test_gpu_smoke_refuses_without_cuda(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_smoke.main(["--out", str(tmp_path / "x.md")]) == 2
    assert "no CUDA device here" in capsys.readouterr().err and not (tmp_path / "x.md").exists()
