"""Pure-PyTorch sampling for volume rendering: ray–box intersection, stratified samples and an occupancy grid.

These replace the CUDA-only parts of nerfacc (`ray_aabb_intersect`, `OccGridEstimator`) on CPU machines; the
occupancy grid follows nerfacc's update rule (EMA of σ·Δt at a random point per cell, binarised at
min(mean, threshold)) so that CPU and GPU runs prune alike.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


def ray_aabb_intersect(rays_o: Tensor, rays_d: Tensor, radius: float, near_plane: float = 0.0,
                       far_plane: float = 1e10) -> tuple[Tensor, Tensor, Tensor]:
    """Entry and exit distances of rays [R, 3] through the box [−radius, radius]³ (slab method, Kay & Kajiya),
    clipped to [near_plane, far_plane]. Returns t_near [R], t_far [R], hit [R] (bool); for a miss t_far = t_near."""
    tiny = torch.finfo(rays_d.dtype).tiny ** 0.5
    d = torch.where(rays_d.abs() < tiny, torch.full_like(rays_d, tiny), rays_d)
    t_lo, t_hi = (-radius - rays_o) / d, (radius - rays_o) / d
    t_near = torch.minimum(t_lo, t_hi).amax(-1).clamp(min=near_plane)
    t_far = torch.maximum(t_lo, t_hi).amin(-1).clamp(max=far_plane)
    hit = t_far > t_near
    return t_near, torch.where(hit, t_far, t_near), hit


def stratified_samples(t_near: Tensor, t_far: Tensor, n_samples: int, randomized: bool = False
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """NeRF's stratified sampling: [t_near, t_far] cut into n equal bins; one sample per bin, at its midpoint or,
    when randomized, uniformly inside it (Mildenhall et al. 2020, Eq. 2). Returns t_points, t_starts, t_ends,
    each [R, n]; the bins are the compositing intervals, so constant densities are integrated exactly."""
    u = torch.linspace(0.0, 1.0, n_samples + 1, dtype=t_near.dtype, device=t_near.device)
    edges = t_near[:, None] + (t_far - t_near)[:, None] * u  # [R, n + 1]
    t_starts, t_ends = edges[:, :-1], edges[:, 1:]
    jitter = torch.rand_like(t_starts) if randomized else torch.full_like(t_starts, 0.5)
    return t_starts + jitter * (t_ends - t_starts), t_starts, t_ends


class OccupancyGrid(nn.Module):
    """A binary occupancy grid of resolution³ cells over [−radius, radius]³ (nerfacc's `OccGridEstimator`
    update rule, in PyTorch). Before the first update every cell is occupied, so nothing is skipped."""

    def __init__(self, radius: float, resolution: int = 32, ema_decay: float = 0.95, threshold: float = 0.01):
        super().__init__()
        self.radius, self.resolution, self.ema_decay, self.threshold = radius, resolution, ema_decay, threshold
        self.register_buffer("occs", torch.zeros(resolution**3))
        self.register_buffer("binaries", torch.ones(resolution, resolution, resolution, dtype=torch.bool))
        axis = torch.arange(resolution)
        cells = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        self.register_buffer("cell_coords", cells, persistent=False)

    @torch.no_grad()
    def update(self, density_fn: Callable[[Tensor], Tensor], step_size: float, chunk: int = 65536) -> None:
        """occs ← max(decay·occs, σ(x)·Δt) with x uniform in each cell; occupied where occs > min(mean, thr)."""
        unit = (self.cell_coords + torch.rand(self.cell_coords.shape, device=self.occs.device)) / self.resolution
        points = (unit * 2.0 - 1.0) * self.radius
        density = torch.cat([density_fn(p).reshape(-1) for p in points.split(chunk)])
        self.occs.copy_(torch.maximum(self.occs * self.ema_decay, density * step_size))
        threshold = min(self.occs.mean().item(), self.threshold)
        self.binaries.copy_((self.occs > threshold).reshape(self.binaries.shape))

    def occupied(self, points: Tensor) -> Tensor:
        """Whether world points [..., 3] lie in occupied cells (False outside the box)."""
        unit = (points / self.radius + 1.0) * 0.5
        inside = ((unit >= 0.0) & (unit <= 1.0)).all(-1)
        index = (unit * self.resolution).long().clamp(0, self.resolution - 1)
        return inside & self.binaries[index[..., 0], index[..., 1], index[..., 2]]

    @property
    def occupied_fraction(self) -> float:
        """Share of occupied cells (a log scalar)."""
        return self.binaries.float().mean().item()
