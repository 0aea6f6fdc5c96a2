"""Position encodings of points in [−1, 1]³ (world points divided by the geometry radius).

Three fields, one interface (`forward(x [N, 3]) -> [N, n_output_dims]`):

- `TriPlane`: three axis-aligned feature planes read with bilinear `grid_sample` (EG3D / K-Planes), summed or
  concatenated — the CPU-fast default;
- `DenseGrid`: one feature volume read with trilinear `grid_sample` (DVGO / Plenoxels style);
- `HashGrid`: the multiresolution hash encoding of Instant-NGP (Müller et al. 2022), in pure PyTorch, or
  tiny-cuda-nn's fused kernel when `tinycudann` imports and CUDA is available (never required).

`EncodingConfig` is the one block of encoding and MLP settings every geometry's `Config` inherits, so a NeRF's
albedo branch and a mesh's texture field are laid out by the same keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:  # GPU users: tiny-cuda-nn's fused hash grid (as threestudio). Absent on CPU machines.
    import tinycudann as tcnn
except Exception:  # ImportError, or a build that fails to load its CUDA library
    tcnn = None

PRIMES = (1, 2654435761, 805459861)
"""Instant-NGP's spatial hash primes (π₁ = 1 keeps the first axis coherent in memory)."""


@dataclass
class EncodingConfig:
    """The box, position encoding and MLP size of a geometry's fields (threestudio's `ImplicitVolume.Config`
    names). Geometry `Config`s inherit these fields, so YAML writes them flat: `system.geometry.encoding`, …"""

    radius: float = 0.7
    """Half-size of the box [−radius, radius]³ the fields span; points are divided by it before encoding."""
    encoding: str = "triplane"
    """Position encoding: `triplane` (CPU-fast default), `dense` or `hashgrid`."""
    n_features: int = 16
    """Features per tri-plane plane or per dense-grid voxel."""
    triplane_resolution: int = 64
    """Side of each tri-plane plane."""
    triplane_reduce: str = "sum"
    """How the three plane features combine: `sum` or `concat`."""
    grid_resolution: int = 64
    """Side of the dense grid."""
    hash_levels: int = 8
    """Hash-grid levels (Instant-NGP and threestudio use 16 on GPU)."""
    hash_features_per_level: int = 2
    """Features per hash-grid level."""
    hash_log2_table_size: int = 15
    """log2 of the entries per hash-grid level (threestudio: 19 on GPU)."""
    hash_base_resolution: int = 16
    """Resolution of the coarsest hash-grid level."""
    hash_per_level_scale: float = 1.447269237440378
    """Growth factor of the hash-grid resolution per level (threestudio's value)."""
    hash_backend: str = "auto"
    """`auto` (tiny-cuda-nn when present with CUDA), `torch` or `tcnn`."""
    mlp_hidden: int = 64
    """Width of the geometry's MLPs (density and albedo)."""
    mlp_layers: int = 1
    """Hidden layers of the geometry's MLPs."""


def same_layout(a: EncodingConfig, b: EncodingConfig) -> bool:
    """Whether fields configured by `a` and `b` read the same weights the same way: every `EncodingConfig` field
    equal, the hash-grid backend aside (its two state-dict layouts tell themselves apart)."""
    names = [f.name for f in dataclasses.fields(EncodingConfig) if f.name != "hash_backend"]
    return all(getattr(a, name) == getattr(b, name) for name in names)


class TriPlane(nn.Module):
    """Three feature planes (xy, xz, yz), each [C, R, R], sampled bilinearly and summed or concatenated."""

    def __init__(self, resolution: int = 64, n_features: int = 16, reduce: str = "sum", init_std: float = 0.1):
        super().__init__()
        if reduce not in ("sum", "concat"):
            raise ValueError(f"TriPlane reduce must be 'sum' or 'concat', got {reduce!r}")
        self.reduce = reduce
        self.planes = nn.Parameter(torch.randn(3, n_features, resolution, resolution) * init_std)
        self.n_output_dims = n_features * (3 if reduce == "concat" else 1)

    def forward(self, x: Tensor) -> Tensor:
        coords = torch.stack([x[:, [0, 1]], x[:, [0, 2]], x[:, [1, 2]]])  # [3, N, 2]
        feats = F.grid_sample(self.planes, coords[:, None], mode="bilinear", padding_mode="border",
                              align_corners=True)  # [3, C, 1, N]
        feats = feats[:, :, 0].permute(2, 0, 1)  # [N, 3, C]
        return feats.sum(1) if self.reduce == "sum" else feats.reshape(len(x), -1)


class DenseGrid(nn.Module):
    """One feature volume [C, R, R, R] sampled trilinearly."""

    def __init__(self, resolution: int = 64, n_features: int = 8, init_std: float = 0.1):
        super().__init__()
        self.grid = nn.Parameter(torch.randn(1, n_features, resolution, resolution, resolution) * init_std)
        self.n_output_dims = n_features

    def forward(self, x: Tensor) -> Tensor:
        feats = F.grid_sample(self.grid, x[None, None, None], mode="bilinear", padding_mode="border",
                              align_corners=True)  # [1, C, 1, 1, N]
        return feats[0, :, 0, 0].T


def _corner_offsets() -> Tensor:
    """The 8 corners of the unit cube as int64 offsets [8, 3]."""
    return torch.tensor([[(k >> d) & 1 for d in range(3)] for k in range(8)], dtype=torch.long)


class HashGrid(nn.Module):
    """Multiresolution hash encoding (Instant-NGP): L levels, resolution N_l = ⌊N_min·b^l⌋, each a table of
    min(2^T, (N_l+1)³) entries of F features (dense indexing when the level fits, XOR-of-primes hash otherwise),
    trilinearly interpolated and concatenated → L·F features.

    `backend`: "auto" (tiny-cuda-nn when importable and CUDA is available, else pure torch), "torch", "tcnn".
    The pure-torch path is slow (DESIGN §1: ~0.05 M points/s fwd+bwd at 16 levels, 2^19 entries) — keep levels
    and tables small on CPU.
    """

    def __init__(self, n_levels: int = 8, n_features_per_level: int = 2, log2_table_size: int = 15,
                 base_resolution: int = 16, per_level_scale: float = 1.447269237440378, backend: str = "auto"):
        super().__init__()
        self.n_output_dims = n_levels * n_features_per_level
        self.backend = self._pick_backend(backend)
        if self.backend == "tcnn":
            self.tcnn_encoding = tcnn.Encoding(3, {
                "otype": "HashGrid", "n_levels": n_levels, "n_features_per_level": n_features_per_level,
                "log2_hashmap_size": log2_table_size, "base_resolution": base_resolution,
                "per_level_scale": per_level_scale}, dtype=torch.float32)
            return
        self.resolutions = [math.floor(base_resolution * per_level_scale**level) for level in range(n_levels)]
        sizes = [min(2**log2_table_size, (r + 1) ** 3) for r in self.resolutions]
        self.register_buffer("offsets", torch.tensor([0, *sizes]).cumsum(0)[:-1], persistent=False)
        self.sizes = sizes
        self.table = nn.Parameter(torch.empty(sum(sizes), n_features_per_level).uniform_(-1e-4, 1e-4))
        self.register_buffer("corners", _corner_offsets(), persistent=False)

    @staticmethod
    def _pick_backend(backend: str) -> str:
        available = tcnn is not None and torch.cuda.is_available()
        if backend == "auto":
            return "tcnn" if available else "torch"
        if backend == "tcnn" and not available:
            raise RuntimeError("HashGrid backend 'tcnn' needs tinycudann and CUDA; use backend 'auto' or 'torch'")
        if backend not in ("torch", "tcnn"):
            raise ValueError(f"HashGrid backend must be auto|torch|tcnn, got {backend!r}")
        return backend

    def _level_index(self, level: int, corners: Tensor) -> Tensor:
        """Table rows [N, 8] of integer corners [N, 8, 3] at one level."""
        res, size = self.resolutions[level], self.sizes[level]
        if (res + 1) ** 3 <= size:  # the level fits: dense, collision-free
            index = corners[..., 0] + (res + 1) * (corners[..., 1] + (res + 1) * corners[..., 2])
        else:
            index = (corners[..., 0] * PRIMES[0]) ^ (corners[..., 1] * PRIMES[1]) ^ (corners[..., 2] * PRIMES[2])
        return index % size + self.offsets[level]

    def forward(self, x: Tensor) -> Tensor:
        unit = ((x + 1.0) * 0.5).clamp(0.0, 1.0)  # tcnn's input domain is [0, 1]³
        if self.backend == "tcnn":
            return self.tcnn_encoding(unit).float()
        feats = []
        for level, res in enumerate(self.resolutions):
            pos = unit * res
            base = pos.floor().long().clamp(max=res - 1)
            frac = pos - base
            corners = base[:, None] + self.corners  # [N, 8, 3]
            w = torch.where(self.corners.bool(), frac[:, None], 1.0 - frac[:, None]).prod(-1)  # [N, 8]
            feats.append((w[..., None] * self.table[self._level_index(level, corners)]).sum(1))
        return torch.cat(feats, dim=-1)


def mlp(n_in: int, hidden: int, n_layers: int, n_out: int) -> nn.Sequential:
    """ReLU MLP with `n_layers` hidden layers (threestudio's `VanillaMLP`)."""
    layers: list[nn.Module] = []
    for _ in range(n_layers):
        layers += [nn.Linear(n_in, hidden), nn.ReLU(inplace=True)]
        n_in = hidden
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def encoding_from(cfg: EncodingConfig) -> nn.Module:
    """The encoding `cfg` describes (`make_encoding` with its fields)."""
    return make_encoding(cfg.encoding, n_features=cfg.n_features, triplane_resolution=cfg.triplane_resolution,
                         triplane_reduce=cfg.triplane_reduce, grid_resolution=cfg.grid_resolution,
                         hash_levels=cfg.hash_levels, hash_features_per_level=cfg.hash_features_per_level,
                         hash_log2_table_size=cfg.hash_log2_table_size, hash_base_resolution=cfg.hash_base_resolution,
                         hash_per_level_scale=cfg.hash_per_level_scale, hash_backend=cfg.hash_backend)


def make_encoding(name: str, n_features: int = 16, triplane_resolution: int = 64, triplane_reduce: str = "sum",
                  grid_resolution: int = 64, hash_levels: int = 8, hash_features_per_level: int = 2,
                  hash_log2_table_size: int = 15, hash_base_resolution: int = 16,
                  hash_per_level_scale: float = 1.447269237440378, hash_backend: str = "auto") -> nn.Module:
    """An encoding by name: `triplane`, `dense` or `hashgrid` (`n_features` is per plane / per voxel; the
    hash grid has `hash_levels · hash_features_per_level` output features)."""
    if name == "triplane":
        return TriPlane(triplane_resolution, n_features, triplane_reduce)
    if name == "dense":
        return DenseGrid(grid_resolution, n_features)
    if name == "hashgrid":
        return HashGrid(hash_levels, hash_features_per_level, hash_log2_table_size, hash_base_resolution,
                        hash_per_level_scale, hash_backend)
    raise ValueError(f"unknown encoding {name!r}; choose triplane, dense or hashgrid")
