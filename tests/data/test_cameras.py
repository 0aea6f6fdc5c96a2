"""Camera sampling (threestudio's random-camera rules) and DreamFusion's view-dependent prompts."""

import math

import pytest
import torch

from ui3d.data.cameras import (CameraConfig, look_at, make_cameras, orbit_cameras, sample_cameras,
                               view_direction, view_prompt)


def test_sampled_cameras_stay_in_range_and_look_at_origin():
    cfg = CameraConfig()
    cams = sample_cameras(512, cfg, torch.Generator().manual_seed(0))
    assert cams.c2w.shape == (512, 4, 4) and len(cams) == 512
    for values, (lo, hi) in [(cams.elevation_deg, cfg.elevation_range), (cams.azimuth_deg, cfg.azimuth_range),
                             (cams.camera_distances, cfg.camera_distance_range),
                             (torch.rad2deg(cams.fovy), cfg.fovy_range)]:
        assert lo - 1e-4 <= values.min() and values.max() <= hi + 1e-4
        assert values.max() - values.min() > 0.8 * (hi - lo)
    rotation = cams.c2w[:, :3, :3]
    assert torch.allclose(rotation.transpose(1, 2) @ rotation, torch.eye(3).expand(512, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(512), atol=1e-5)
    position = cams.camera_positions
    assert torch.allclose(position.norm(dim=-1), cams.camera_distances, atol=1e-5)
    assert torch.allclose(cams.c2w[:, :3, 2], position / position.norm(dim=-1, keepdim=True), atol=1e-5)
    assert torch.allclose(torch.rad2deg(torch.asin(position[:, 2] / cams.camera_distances)), cams.elevation_deg,
                          atol=1e-3)
    assert (cams.c2w[:, 2, 1] > 0).all()  # the image's up is the world's +z side


def test_batch_uniform_azimuth_is_stratified_and_seeded():
    cams = sample_cameras(8, CameraConfig(), torch.Generator().manual_seed(3))
    strata = torch.floor((cams.azimuth_deg + 180.0) / 45.0)
    assert sorted(strata.tolist()) == list(range(8))
    again = sample_cameras(8, CameraConfig(), torch.Generator().manual_seed(3))
    assert torch.equal(cams.c2w, again.c2w)


def test_perturbed_cameras_are_valid_rotations():
    cfg = CameraConfig(camera_perturb=0.1, center_perturb=0.2, up_perturb=0.02)
    cams = sample_cameras(16, cfg, torch.Generator().manual_seed(1))
    rotation = cams.c2w[:, :3, :3]
    assert torch.allclose(rotation.transpose(1, 2) @ rotation, torch.eye(3).expand(16, 3, 3), atol=1e-5)


def test_front_camera_sees_plus_y_on_the_right():
    cams = make_cameras(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.full((1,), 60.0))
    assert torch.allclose(cams.c2w[0, :3, :3], torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]), atol=1e-6)
    assert torch.allclose(cams.fovy, torch.tensor([math.pi / 3]))
    c2w = look_at(torch.tensor([[0.0, -2.0, 0.0]]))
    assert torch.allclose(c2w[0, :3, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)  # from -y, +x is right


def test_orbit_cameras():
    cams = orbit_cameras(8)
    assert torch.allclose(cams.elevation_deg, torch.full((8,), 15.0))
    assert torch.allclose(torch.remainder(cams.azimuth_deg, 360.0), torch.arange(8) * 45.0)
    assert torch.allclose(cams.camera_positions.norm(dim=-1), torch.full((8,), 1.5))
    assert len(cams[2:4]) == 2


@pytest.mark.parametrize("elevation,azimuth,expected", [
    (0.0, 0.0, "front"), (10.0, 44.9, "front"), (10.0, -44.9, "front"), (0.0, 45.0, "side"),
    (0.0, 90.0, "side"), (0.0, -90.0, "side"), (0.0, 135.0, "side"), (0.0, 135.1, "back"),
    (0.0, 180.0, "back"), (0.0, -170.0, "back"), (0.0, 350.0, "front"), (60.0, 90.0, "side"),
    (60.1, 90.0, "overhead"), (80.0, 0.0, "overhead"), (80.0, 180.0, "overhead")])
def test_view_direction_thresholds(elevation, azimuth, expected):
    assert view_direction(torch.tensor([elevation]), torch.tensor([azimuth])) == [expected]


def test_view_prompt():
    assert view_prompt("a red striped vase", "side") == "a red striped vase, side view"
    assert view_prompt("a mug", "overhead") == "a mug, overhead view"
    with pytest.raises(KeyError, match="front"):
        view_prompt("a mug", "top")
