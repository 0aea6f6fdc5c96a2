"""The random-camera data module's lights: threestudio's DreamFusion strategy and the embedded teacher's
camera-fixed light."""
import pytest
import torch

from ui3d.data.datamodule import CAMERA_LIGHT_DISTANCE, OrbitDataset, RandomCameraConfig, RandomCameraDataset


def directions_in_camera_frame(batch) -> torch.Tensor:
    to_light = torch.nn.functional.normalize(batch["light_positions"] - batch["c2w"][:, :3, 3], dim=-1)
    return torch.einsum("bji,bj->bi", batch["c2w"][:, :3, :3], to_light)  # world → camera axes


def test_camera_strategy_lights_every_view_from_the_same_camera_direction():
    cfg = RandomCameraConfig(batch_size=4, width=8, height=8, light_sample_strategy="camera")
    expected = torch.nn.functional.normalize(torch.tensor(cfg.light_direction), dim=0)
    for batch in (RandomCameraDataset(cfg, 3)[1], OrbitDataset(cfg, 4)[2]):
        local = directions_in_camera_frame(batch)
        torch.testing.assert_close(local, expected.expand_as(local), atol=2e-2, rtol=0)
        assert (batch["light_positions"].norm(dim=-1) > 0.9 * CAMERA_LIGHT_DISTANCE).all()


def test_dreamfusion_strategy_samples_near_the_camera_and_lights_evaluation_from_the_camera():
    cfg = RandomCameraConfig(batch_size=64, width=8, height=8)
    batch = RandomCameraDataset(cfg, 3)[0]
    distance = batch["light_positions"].norm(dim=-1)
    assert distance.min() >= 0.8 - 1e-5 and distance.max() <= 1.5 + 1e-5
    assert distance.std() > 0.05
    orbit = OrbitDataset(cfg, 4)[1]
    torch.testing.assert_close(orbit["light_positions"], orbit["c2w"][:, :3, 3])


def test_unknown_light_strategy_is_named():
    cfg = RandomCameraConfig(width=8, height=8, light_sample_strategy="sun")
    with pytest.raises(ValueError, match="light_sample_strategy 'sun'"):
        RandomCameraDataset(cfg, 1)[0]
