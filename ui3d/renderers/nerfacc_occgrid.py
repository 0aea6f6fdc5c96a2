"""The CUDA path of `nerf-volume-renderer`: nerfacc's `OccGridEstimator` marches rays through occupied cells
(threestudio's `estimator: occgrid`). Its sampling and packed compositing need nerfacc's CUDA kernels, so this
module only runs on GPU machines; CPU machines use `ui3d.renderers.ray_sampling` instead.

Per-sample outputs are packed: [S, C] with `ray_indices` [S], as in threestudio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import nerfacc
import torch
from torch import Tensor

if TYPE_CHECKING:
    from ui3d.renderers.nerf_volume_renderer import NeRFVolumeRenderer


def make_estimator(radius: float, cfg: object) -> nerfacc.OccGridEstimator:
    """An occupancy-grid estimator over [−radius, radius]³; with `grid_prune` off every cell stays occupied."""
    estimator = nerfacc.OccGridEstimator(roi_aabb=[-radius] * 3 + [radius] * 3, resolution=cfg.grid_resolution,
                                         levels=1)
    if not cfg.grid_prune:
        estimator.occs.fill_(1.0)
        estimator.binaries.fill_(True)
    return estimator


def render_rays(renderer: NeRFVolumeRenderer, rays_o: Tensor, rays_d: Tensor, light: Tensor,
                material_kwargs: dict) -> dict[str, Tensor]:
    """March flat rays [R, 3] with the estimator, shade the samples, composite with packed nerfacc ops."""
    cfg, n_rays = renderer.cfg, len(rays_o)

    def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
        t_mid = (t_starts + t_ends)[:, None] * 0.5
        return renderer.geometry.forward_density(rays_o[ray_indices] + t_mid * rays_d[ray_indices])[:, 0]

    ray_indices, t_starts, t_ends = renderer.estimator.sampling(
        rays_o, rays_d, sigma_fn=sigma_fn if cfg.grid_prune else None, near_plane=cfg.near_plane,
        far_plane=cfg.far_plane, render_step_size=renderer.render_step_size,
        alpha_thre=0.01 if cfg.grid_prune else 0.0, stratified=renderer.training and cfg.randomized)
    ray_indices = ray_indices.long()
    t_points = (t_starts + t_ends)[:, None] * 0.5
    dirs = rays_d[ray_indices]
    fields = renderer._shade(rays_o[ray_indices] + t_points * dirs, dirs, light[ray_indices], material_kwargs)
    renderer.samples_evaluated = len(ray_indices)
    weights, _, _ = nerfacc.render_weight_from_density(t_starts, t_ends, fields["density"][:, 0],
                                                       ray_indices=ray_indices, n_rays=n_rays)

    def accumulate(values: Tensor | None) -> Tensor:
        return nerfacc.accumulate_along_rays(weights, values, ray_indices=ray_indices, n_rays=n_rays)

    out = {"opacity": accumulate(None), "depth": accumulate(t_points), "comp_rgb_fg": accumulate(fields["rgb"]),
           "weights": weights[:, None], "t_points": t_points, "t_intervals": (t_ends - t_starts)[:, None],
           "t_dirs": dirs, "ray_indices": ray_indices}
    if "normal" in fields:
        out.update(normal=fields["normal"], comp_normal=accumulate(fields["normal"]))
    return out


def update(renderer: NeRFVolumeRenderer, global_step: int) -> None:
    """nerfacc's `update_every_n_steps` with threestudio's occupancy σ·Δt (training mode only)."""
    if not renderer.training:
        return

    def occ_eval_fn(x: Tensor) -> Tensor:
        return renderer.geometry.forward_density(x) * renderer.render_step_size

    with torch.no_grad():
        renderer.estimator.update_every_n_steps(
            step=global_step, occ_eval_fn=occ_eval_fn, occ_thre=renderer.cfg.occupancy_threshold,
            ema_decay=renderer.cfg.grid_ema_decay, n=renderer.cfg.grid_update_every)
