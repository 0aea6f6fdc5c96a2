"""NeRF volume rendering of an implicit volume (threestudio's `nerf-volume-renderer`,
`threestudio/models/renderers/nerf_volume_renderer.py`).

Rays are clipped to the geometry's box, cut into `num_samples_per_ray` stratified bins (NeRF), and the field is
evaluated only at samples inside occupied cells of an occupancy grid (the others have density zero); weights
w_i = T_i (1 − exp(−σ_i δ_i)) and the composites Σ w_i v_i come from nerfacc's batched
`render_weight_from_density` / `accumulate_along_rays`, which run on CPU. On CUDA tensors, with
`estimator: auto|nerfacc`, nerfacc's `OccGridEstimator` marches the rays instead (`ui3d.renderers.nerfacc_occgrid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import nerfacc
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ui3d import register
from ui3d.renderers import nerfacc_occgrid
from ui3d.renderers.ray_sampling import OccupancyGrid, ray_aabb_intersect, stratified_samples

PER_RAY = ("comp_rgb", "comp_rgb_fg", "comp_rgb_bg", "opacity", "depth", "comp_normal", "comp_normal_vis")
"""Outputs with one value per pixel, [B, H, W, C]; the others are per sample, [B, H, W, N, C]."""


@register("nerf-volume-renderer")
class NeRFVolumeRenderer(nn.Module):
    """Renders `geometry` (density, features, normals) shaded by `material` over `background`."""

    @dataclass
    class Config:
        """Sampling, culling and output options (threestudio's names where it has them)."""

        num_samples_per_ray: int = 64
        """Stratified samples per ray inside the bounding box."""
        randomized: bool = True
        """Jitter the samples inside their bins in training (NeRF's stratified sampling)."""
        near_plane: float = 0.0
        """Smallest ray distance; rays are further clipped to the geometry's box [−radius, radius]³."""
        far_plane: float = 1e10
        """Largest ray distance."""
        eval_chunk: int = 16384
        """Rays per chunk outside training (0: one chunk), bounding memory of big validation renders."""
        return_comp_normal: bool = False
        """Composite normals in training even when the material does not need them (always done in eval)."""
        grid_prune: bool = True
        """Skip field evaluations in cells that the occupancy grid marks empty."""
        grid_resolution: int = 32
        """Cells per side of the occupancy grid."""
        grid_update_every: int = 16
        """Steps between occupancy-grid updates (nerfacc's `n`)."""
        grid_ema_decay: float = 0.95
        """EMA decay of the cell occupancies (nerfacc's default)."""
        occupancy_threshold: float = 0.01
        """A cell is empty when its σ·Δt is below min(this, the grid mean) (nerfacc's `occ_thre`)."""
        estimator: str = "auto"
        """`torch` (stratified + PyTorch grid), `nerfacc` (OccGridEstimator, CUDA only), `auto`: nerfacc on CUDA."""

    def __init__(self, cfg: Config, geometry: nn.Module, material: nn.Module, background: nn.Module):
        super().__init__()
        if cfg.estimator not in ("auto", "torch", "nerfacc"):
            raise ValueError(f"estimator must be auto|torch|nerfacc, got {cfg.estimator!r}")
        self.cfg, self.geometry, self.material, self.background = cfg, geometry, material, background
        self.radius = float(geometry.cfg.radius)
        self.render_step_size = math.sqrt(3.0) * 2.0 * self.radius / cfg.num_samples_per_ray  # threestudio
        self.occupancy = OccupancyGrid(self.radius, cfg.grid_resolution, cfg.grid_ema_decay,
                                       cfg.occupancy_threshold)
        self.estimator = nerfacc_occgrid.make_estimator(self.radius, cfg) if cfg.estimator != "torch" else None
        self.samples_evaluated = 0
        """Field evaluations of the last forward (a log scalar: what culling saved)."""

    def _use_nerfacc(self, device: torch.device) -> bool:
        return self.estimator is not None and device.type == "cuda"

    def _needs_normal(self, shading: str | None = None) -> bool:
        """Normals (3 more field evaluations per sample) only where the material shades with them this batch, or
        for `return_comp_normal` and evaluation renders."""
        shaded = bool(getattr(self.material, "requires_normal", False)) and shading != "albedo"
        return shaded or self.cfg.return_comp_normal or not self.training

    def forward(self, rays_o: Tensor, rays_d: Tensor, light_positions: Tensor, bg_color: Tensor | None = None,
                **material_kwargs: object) -> dict[str, Tensor]:
        """Render rays [B, H, W, 3] lit by `light_positions` [B, 3]. Returns `comp_rgb`, `comp_rgb_fg`,
        `comp_rgb_bg`, `comp_normal`, `comp_normal_vis` ([B, H, W, 3]), `opacity`, `depth` ([B, H, W, 1]) and,
        per sample, `weights`, `t_points`, `t_intervals` ([B, H, W, N, 1]), `t_dirs`, `normal` ([B, H, W, N, 3]);
        on the nerfacc path the per-sample tensors are packed [S, C] with `ray_indices` [S].
        `bg_color` [B, H, W, 3] or [3] replaces the background; `material_kwargs` go to the material."""
        batch, height, width, _ = rays_o.shape
        n_rays = batch * height * width
        if "shading" not in material_kwargs and hasattr(self.material, "pick_shading"):
            material_kwargs = {**material_kwargs, "shading": self.material.pick_shading()}  # one per batch
        bg = self.background(rays_d) if bg_color is None else bg_color.to(rays_d).expand_as(rays_d)
        light = light_positions[:, None, None].expand_as(rays_o)
        flat = [t.reshape(n_rays, 3) for t in (rays_o, rays_d, light)]
        if self._use_nerfacc(rays_o.device):
            out = nerfacc_occgrid.render_rays(self, *flat, material_kwargs)
        else:
            chunk = self.cfg.eval_chunk if not self.training and self.cfg.eval_chunk > 0 else n_rays
            self.samples_evaluated = 0
            pieces = [self._render_rays(*rays, material_kwargs) for rays in zip(*(t.split(chunk) for t in flat))]
            out = {key: torch.cat([piece[key] for piece in pieces]) for key in pieces[0]}
        out["comp_rgb_bg"] = bg.reshape(n_rays, 3)
        out["comp_rgb"] = out["comp_rgb_fg"] + out["comp_rgb_bg"] * (1.0 - out["opacity"])
        if "comp_normal" in out:
            unit = F.normalize(out["comp_normal"], dim=-1)
            out["comp_normal_vis"] = (unit + 1.0) * 0.5 * out["opacity"] + (1.0 - out["opacity"])
        packed = self._use_nerfacc(rays_o.device)
        return {key: value if packed and key not in PER_RAY else value.reshape(batch, height, width,
                                                                                  *value.shape[1:])
                for key, value in out.items()}

    def _render_rays(self, rays_o: Tensor, rays_d: Tensor, light: Tensor, material_kwargs: dict) -> dict:
        """Stratified samples, culled field evaluation, nerfacc compositing for flat rays [R, 3]."""
        t_near, t_far, hit = ray_aabb_intersect(rays_o, rays_d, self.radius, self.cfg.near_plane,
                                                self.cfg.far_plane)
        randomized = self.training and self.cfg.randomized
        t_points, t_starts, t_ends = stratified_samples(t_near, t_far, self.cfg.num_samples_per_ray, randomized)
        positions = rays_o[:, None] + t_points[..., None] * rays_d[:, None]  # [R, N, 3]
        active = hit[:, None] & (t_ends > t_starts)
        if self.cfg.grid_prune:
            active = active & self.occupancy.occupied(positions)
        dirs = rays_d[:, None].expand_as(positions)
        fields = self._shade(positions[active], dirs[active], light[:, None].expand_as(positions)[active],
                             material_kwargs)
        self.samples_evaluated += int(active.sum())
        density, rgb, normal = (_scatter(active, fields[k]) if k in fields else None
                                for k in ("density", "rgb", "normal"))
        weights, _, _ = nerfacc.render_weight_from_density(t_starts, t_ends, density[..., 0])
        out = {
            "opacity": nerfacc.accumulate_along_rays(weights, None),
            "depth": nerfacc.accumulate_along_rays(weights, t_points[..., None]),
            "comp_rgb_fg": nerfacc.accumulate_along_rays(weights, rgb),
            "weights": weights[..., None], "t_points": t_points[..., None],
            "t_intervals": (t_ends - t_starts)[..., None], "t_dirs": dirs,
        }
        if normal is not None:
            out.update(normal=normal, comp_normal=nerfacc.accumulate_along_rays(weights, normal))
        return out

    def _shade(self, positions: Tensor, dirs: Tensor, light: Tensor, material_kwargs: dict) -> dict[str, Tensor]:
        """Field and material at the evaluated samples [S, 3]: `density` [S, 1], `rgb` [S, 3], `normal`."""
        geo = self.geometry(positions, with_normal=self._needs_normal(material_kwargs.get("shading")))
        rgb = self.material(features=geo["features"], positions=positions, shading_normal=geo.get("normal"),
                            light_positions=light, viewdirs=dirs, **material_kwargs)
        return {"density": geo["density"], "rgb": rgb, **({"normal": geo["normal"]} if "normal" in geo else {})}

    def update_step(self, global_step: int) -> None:
        """Refresh the occupancy grid every `grid_update_every` steps (threestudio's `update_step`)."""
        if not self.cfg.grid_prune:
            return
        if self.estimator is not None and self.geometry_device().type == "cuda":
            nerfacc_occgrid.update(self, global_step)
        elif global_step % self.cfg.grid_update_every == 0:
            self.update_occupancy()

    def update_occupancy(self) -> None:
        """Refresh the PyTorch occupancy grid now with occupancy σ·Δt (nerfacc's Taylor approximation of
        1 − exp(−σΔt), as threestudio's `occ_eval_fn`)."""
        self.occupancy.update(self.geometry.forward_density, self.render_step_size)

    def geometry_device(self) -> torch.device:
        """Device of the geometry's parameters."""
        return next(self.geometry.parameters()).device


def _scatter(mask: Tensor, values: Tensor) -> Tensor:
    """values [S, C] placed at the True entries of mask [R, N] in zeros [R, N, C] (differentiable)."""
    full = values.new_zeros(*mask.shape, values.shape[-1])
    full[mask] = values
    return full
