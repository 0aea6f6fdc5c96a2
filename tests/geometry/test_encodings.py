"""Position encodings: output shapes, interpolation, gradients, and the tiny-cuda-nn fallback."""

import pytest
import torch

from ui3d.geometry import encodings
from ui3d.geometry.encodings import DenseGrid, EncodingConfig, HashGrid, TriPlane, make_encoding, same_layout


@pytest.mark.parametrize("name, kwargs, dims", [
    ("triplane", dict(n_features=8, triplane_resolution=16), 8),
    ("triplane", dict(n_features=8, triplane_resolution=16, triplane_reduce="concat"), 24),
    ("dense", dict(n_features=4, grid_resolution=8), 4),
    ("hashgrid", dict(hash_levels=4, hash_features_per_level=2, hash_log2_table_size=10), 8),
])
def test_shapes_and_gradients(name, kwargs, dims):
    torch.manual_seed(0)
    enc = make_encoding(name, **kwargs)
    x = torch.rand(50, 3) * 2 - 1
    y = enc(x)
    assert enc.n_output_dims == dims and y.shape == (50, dims) and y.dtype == torch.float32
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_triplane_is_bilinear_in_its_planes():
    enc = TriPlane(resolution=2, n_features=1)
    with torch.no_grad():  # plane k holds its first coordinate at the corners: linear interpolation is exact
        enc.planes.copy_(torch.tensor([-1.0, 1.0]).expand(3, 1, 2, 2))
    x = torch.tensor([[0.3, -0.2, 0.5]])
    assert torch.allclose(enc(x), torch.tensor([[0.3 + 0.3 + (-0.2)]]), atol=1e-6)


def test_dense_grid_corners():
    enc = DenseGrid(resolution=2, n_features=1)
    with torch.no_grad():
        enc.grid.zero_()
        enc.grid[0, 0, 1, 1, 1] = 1.0  # grid[..., D, H, W] at (z, y, x) = (+1, +1, +1)
    x = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(enc(x)[:, 0], torch.tensor([1.0, 0.0, 0.125]), atol=1e-6)


def test_hashgrid_levels_dense_then_hashed_and_continuous():
    enc = HashGrid(n_levels=3, log2_table_size=12, base_resolution=8, per_level_scale=2.0, backend="torch")
    assert enc.resolutions == [8, 16, 32] and enc.sizes == [9**3, 2**12, 2**12]
    torch.nn.init.normal_(enc.table)
    x = torch.rand(20, 3) * 2 - 1
    assert (enc(x + 1e-5) - enc(x)).abs().max() < 1e-2  # trilinear interpolation is continuous


def test_hashgrid_falls_back_without_tinycudann(monkeypatch):
    monkeypatch.setattr(encodings, "tcnn", None)
    assert HashGrid(n_levels=2, log2_table_size=8).backend == "torch"
    with pytest.raises(RuntimeError, match="tinycudann"):
        HashGrid(n_levels=2, log2_table_size=8, backend="tcnn")
    monkeypatch.setattr(encodings, "tcnn", object())  # importable but no CUDA: still the torch path
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert HashGrid(n_levels=2, log2_table_size=8).backend == "torch"


def test_unknown_encoding():
    with pytest.raises(ValueError, match="hashgrid"):
        make_encoding("fourier")


def test_same_layout_compares_every_field_but_the_backend():
    base = EncodingConfig()
    assert same_layout(base, EncodingConfig(hash_backend="torch"))
    for change in ({"radius": 1.0}, {"triplane_reduce": "concat"}, {"hash_per_level_scale": 1.5}, {"mlp_layers": 2}):
        assert not same_layout(base, EncodingConfig(**change)), change
