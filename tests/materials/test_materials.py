"""Materials: threestudio's diffuse-with-point-light formula, its shading schedule, and no-material."""

import pytest
import torch

from ui3d import find
from ui3d.materials.diffuse_with_point_light_material import DiffuseWithPointLightMaterial
from ui3d.materials.no_material import NoMaterial


def make(**cfg) -> DiffuseWithPointLightMaterial:
    return DiffuseWithPointLightMaterial(DiffuseWithPointLightMaterial.Config(**cfg)).eval()


def inputs():
    features = torch.tensor([[0.2, 0.4, 0.8], [0.5, 0.5, 0.5]])
    positions = torch.zeros(2, 3)
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    light = torch.tensor([[0.0, 3.0, 3.0], [0.0, 3.0, 3.0]])  # 45° above the first sample, behind the second
    return dict(features=features, positions=positions, shading_normal=normals, light_positions=light,
                viewdirs=torch.zeros(2, 3))


def test_registered():
    assert find("diffuse-with-point-light-material") is DiffuseWithPointLightMaterial
    assert find("no-material") is NoMaterial


def test_diffuse_is_ambient_plus_lambert():
    rgb = make(ambient_only_steps=0)(**inputs())
    cos = 2**-0.5
    assert torch.allclose(rgb[0], torch.tensor([0.2, 0.4, 0.8]) * (0.1 + 0.9 * cos))
    assert torch.allclose(rgb[1], torch.full((3,), 0.5 * 0.1))  # facing away: ambient only


def test_ambient_ratio_and_textureless():
    material = make(ambient_only_steps=0)
    rgb = material(**inputs(), ambient_ratio=0.3, shading="textureless")
    assert torch.allclose(rgb[0], torch.full((3,), 0.3 + 0.7 * 2**-0.5))
    with pytest.raises(ValueError):
        material(**inputs(), shading="phong")


def test_ambient_only_warm_up():
    material = make(ambient_only_steps=100)
    assert torch.equal(material(**inputs()), inputs()["features"])  # albedo during the warm-up
    material.update_step(99)
    assert material.ambient_only
    material.update_step(100)
    assert not material.ambient_only and not torch.equal(material(**inputs()), inputs()["features"])


def test_training_shading_choice_follows_the_probabilities():
    material = make(ambient_only_steps=0, diffuse_prob=0.75, textureless_prob=0.5).train()
    torch.manual_seed(0)
    picks = [material.pick_shading() for _ in range(4000)]
    assert abs(picks.count("albedo") / 4000 - 0.25) < 0.03
    assert abs(picks.count("textureless") / 4000 - 0.375) < 0.03


def test_no_material_passes_features_through():
    x = torch.rand(4, 3)
    assert torch.equal(NoMaterial()(x, None, None, None, None), x)
