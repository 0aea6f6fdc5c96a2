import pytest
import torch
import trimesh

from ui3d.benchmarks import mesh_quality


def test_chamfer_is_symmetric_and_zero_only_on_the_same_points():
    a = torch.rand(300, 3)
    assert mesh_quality.chamfer(a, a) == pytest.approx(0.0, abs=1e-3)
    b = a + torch.tensor([0.1, 0.0, 0.0])
    assert mesh_quality.chamfer(a, b) == pytest.approx(mesh_quality.chamfer(b, a))
    assert 0.0 < mesh_quality.chamfer(a, b) <= 0.2 + 1e-6


def test_an_exact_copy_resampled_scores_the_floor_not_zero():
    sphere = trimesh.creation.icosphere(subdivisions=4)
    floor = mesh_quality.sampling_floor(sphere)
    assert 0.015 < floor < 0.04  # 4,000 points on a unit-box sphere are ~0.03 apart


def test_the_ball_baseline_is_its_own_floor_and_the_mug_baseline_is_not():
    sphere, floor = mesh_quality.sphere_baseline("ball")
    assert sphere <= 1.1 * floor  # the ball's first shape is a sphere
    sphere, floor = mesh_quality.sphere_baseline("mug")
    assert sphere > 3 * floor
