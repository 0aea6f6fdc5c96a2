"""Backgrounds: solid colours, learned colours, random augmentation, the SH environment map."""

import math

import torch

from ui3d import find
from ui3d.background.neural_environment_map_background import NeuralEnvironmentMapBackground, spherical_harmonics
from ui3d.background.solid_color_background import SolidColorBackground

DIRS = torch.nn.functional.normalize(torch.randn(2, 4, 5, 3), dim=-1)


def test_registered():
    assert find("solid-color-background") is SolidColorBackground
    assert find("neural-environment-map-background") is NeuralEnvironmentMapBackground


def test_solid_color_and_learned():
    fixed = SolidColorBackground(SolidColorBackground.Config(color=(0.1, 0.2, 0.3)))
    assert torch.allclose(fixed(DIRS), torch.tensor([0.1, 0.2, 0.3]).expand(2, 4, 5, 3))
    assert not list(fixed.parameters())
    learned = SolidColorBackground(SolidColorBackground.Config(learned=True))
    learned(DIRS).sum().backward()
    assert torch.equal(learned.color.grad, torch.full((3,), 40.0))


def test_solid_random_aug_only_in_training():
    bg = SolidColorBackground(SolidColorBackground.Config(random_aug=True, random_aug_prob=1.0))
    color = bg.train()(DIRS)
    assert not torch.allclose(color, torch.ones_like(color)) and torch.equal(color, color[:1, :1, :1].expand_as(color))
    assert torch.equal(bg.eval()(DIRS), torch.ones_like(DIRS))


def test_environment_map_shapes_range_and_aug():
    torch.manual_seed(0)
    bg = NeuralEnvironmentMapBackground(NeuralEnvironmentMapBackground.Config(random_aug=True, random_aug_prob=1.0))
    color = bg.eval()(DIRS)
    assert color.shape == DIRS.shape and ((color > 0) & (color < 1)).all() and color.std() > 0
    augmented = bg.train()(DIRS)  # one random colour per image
    assert torch.equal(augmented, augmented[:, :1, :1].expand_as(augmented))
    assert not torch.equal(augmented[0], augmented[1])
    white = NeuralEnvironmentMapBackground(NeuralEnvironmentMapBackground.Config(eval_color=(1.0, 1.0, 1.0)))
    assert torch.equal(white.eval()(DIRS), torch.ones_like(DIRS))


def test_spherical_harmonics_are_orthonormal():
    torch.manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(200_000, 3, dtype=torch.float64), dim=-1)
    y = spherical_harmonics(d)
    gram = 4 * math.pi * y.T @ y / len(d)  # Monte-Carlo ∫ Y_i Y_j dΩ
    assert (gram - torch.eye(16, dtype=torch.float64)).abs().max() < 0.05
