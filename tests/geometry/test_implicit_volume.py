"""The implicit volume: output ranges, the Magic3D blob, outward normals, the isosurface grid."""

import pytest
import torch

from ui3d import find
from ui3d.geometry.implicit_volume import ImplicitVolume


def make_volume(**overrides) -> ImplicitVolume:
    torch.manual_seed(0)
    cfg = dict(triplane_resolution=16, n_features=8, grid_resolution=8, hash_levels=4, hash_log2_table_size=10,
               mlp_hidden=16)
    return ImplicitVolume(ImplicitVolume.Config(**{**cfg, **overrides}))


def sphere_volume(**overrides) -> ImplicitVolume:
    """A volume whose density is exactly softplus(blob): the network's raw density is zeroed."""
    volume = make_volume(**overrides)
    torch.nn.init.zeros_(volume.density_network[-1].weight)
    torch.nn.init.zeros_(volume.density_network[-1].bias)
    return volume


def test_registered():
    assert find("implicit-volume") is ImplicitVolume


@pytest.mark.parametrize("encoding", ["triplane", "dense", "hashgrid"])
def test_output_shapes_and_ranges(encoding):
    volume = make_volume(encoding=encoding)
    out = volume(torch.rand(40, 3) * 1.4 - 0.7, with_normal=True)
    assert out["density"].shape == (40, 1) and (out["density"] >= 0).all()
    assert out["features"].shape == (40, 3) and (out["features"] >= 0).all() and (out["features"] <= 1).all()
    assert torch.allclose(out["normal"].norm(dim=-1), torch.ones(40), atol=1e-5)
    assert "normal" not in volume(torch.zeros(2, 3))


def test_blob_bias_is_magic3d():
    volume = sphere_volume()
    points = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.7]])
    expected = torch.nn.functional.softplus(10.0 * (1 - points.norm(dim=-1, keepdim=True) / 0.5))
    assert torch.allclose(volume.forward_density(points), expected, atol=1e-5)
    assert volume.forward_density(points)[0] > 9.9 and volume.forward_density(points)[2] < 0.02


@pytest.mark.parametrize("normal_type", ["finite_difference", "analytic"])
def test_sphere_normals_point_outward(normal_type):
    volume = sphere_volume(normal_type=normal_type, finite_difference_eps=1e-3)
    points = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1) * (torch.rand(64, 1) * 0.4 + 0.1)
    normal = volume(points, with_normal=True)["normal"]
    cos = (normal * torch.nn.functional.normalize(points, dim=-1)).sum(-1)
    assert cos.min() > 0.999


def test_analytic_normals_in_no_grad_and_with_grad():
    volume = make_volume(normal_type="analytic")
    points = torch.rand(10, 3) - 0.5
    with torch.no_grad():
        out = volume(points, with_normal=True)
    assert not out["normal"].requires_grad and not out["density"].requires_grad
    out = volume(points, with_normal=True)
    out["normal"].sum().backward()  # create_graph: normals train the field (orientation loss)
    assert volume.encoding.planes.grad.abs().sum() > 0


def test_activations():
    x = torch.tensor([[0.1, 0.2, 0.0]])
    for activation in ("softplus", "exp", "trunc_exp"):
        assert make_volume(density_activation=activation).forward_density(x).item() > 0
    raw = torch.tensor([20.0], requires_grad=True)
    from ui3d.geometry.implicit_volume import _TruncExp
    _TruncExp.apply(raw).backward()
    assert torch.allclose(raw.grad, torch.exp(torch.tensor(15.0)))
    with pytest.raises(ValueError):
        make_volume(density_activation="relu")


def test_isosurface_grid():
    volume = sphere_volume()
    grid = volume.isosurface_grid(9)
    assert grid.shape == (9, 9, 9)
    assert grid[4, 4, 4] > 9.9 and grid[0, 0, 0] < 1e-3
    assert torch.allclose(grid, grid.flip(0), atol=1e-5)  # the blob is symmetric


def test_sphere_bound_zeroes_density_outside_and_keeps_it_inside():
    """A raw density large everywhere (the box filled) survives inside the sphere and is zero outside."""
    bounded, free = make_volume(sphere_radius=0.5, density_bias="none"), make_volume(density_bias="none")
    for volume in (bounded, free):
        torch.nn.init.zeros_(volume.density_network[-1].weight)
        torch.nn.init.constant_(volume.density_network[-1].bias, 20.0)
    direction = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    inside, edge, outside = direction * 0.47, direction * 0.49, direction * 0.51
    assert torch.allclose(bounded.forward_density(inside), free.forward_density(inside))
    assert torch.allclose(bounded.forward_density(edge), 0.5 * free.forward_density(edge), rtol=1e-4)
    assert (bounded.forward_density(outside) == 0).all() and (free.forward_density(outside) > 19).all()
    grid = bounded.isosurface_grid(16)   # marching cubes of stage 2 sees the bounded field too
    corner = grid[0, 0, 0]
    assert corner < 1e-6 and grid[8, 8, 8] > 19.0


def test_sphere_bound_rejects_nonpositive_sizes():
    with pytest.raises(ValueError, match="sphere_radius"):
        make_volume(sphere_radius=0.0)
