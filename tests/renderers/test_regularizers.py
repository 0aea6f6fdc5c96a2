"""Regularisers against their closed forms."""

import math

import torch

from ui3d.renderers.regularizers import opacity_entropy, orientation, sparsity


def test_sparsity():
    assert torch.isclose(sparsity(torch.zeros(2, 4, 4, 1)), torch.tensor(0.1))
    assert torch.isclose(sparsity(torch.ones(3, 1)), torch.tensor(math.sqrt(1.01)))


def test_opacity_entropy_peaks_at_half_and_vanishes_at_the_ends():
    assert torch.isclose(opacity_entropy(torch.full((5, 1), 0.5)), torch.tensor(math.log(2.0)))
    assert opacity_entropy(torch.tensor([0.0, 1.0])) < 0.01


def test_orientation_penalises_normals_facing_away():
    rays_d = torch.tensor([[0.0, 0.0, -1.0]])  # one ray looking down
    weights = torch.tensor([[[0.5], [0.25]]])  # [R=1, N=2, 1]
    towards = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    away = torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.6, -0.8]]])
    assert orientation(weights, towards, rays_d) == 0
    assert torch.isclose(orientation(weights, away, rays_d), torch.tensor(0.5 + 0.25 * 0.64))
    per_sample = rays_d[:, None].expand(1, 2, 3)
    opacity = torch.tensor([[0.75]])
    assert torch.isclose(orientation(weights, away, per_sample, opacity), torch.tensor(0.66))


def test_orientation_gradient_reaches_normals_not_weights():
    weights = torch.full((1, 3, 1), 0.3, requires_grad=True)
    normals = torch.tensor([[[0.0, 0.0, -1.0]] * 3], requires_grad=True)
    orientation(weights, normals, torch.tensor([[0.0, 0.0, -1.0]])).backward()
    assert weights.grad is None and normals.grad.abs().sum() > 0
