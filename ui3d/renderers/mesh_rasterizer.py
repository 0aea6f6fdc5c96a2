"""Rasterized rendering of a mesh geometry (threestudio's `nvdiff-rasterizer`, used by Magic3D / ProlificDreamer
stages 2 and 3): nvdiffrast when it imports and the mesh is on CUDA, the pure-PyTorch `ui3d.renderers.rasterizer`
otherwise. Supersampling (render ss× larger, average ss×ss blocks) anti-aliases the edges.

Outputs match the NeRF renderer's keys: `comp_rgb` (material-shaded albedo over the background), `opacity`,
`comp_normal` (world-space unit normals), `comp_normal_vis` ((n + 1)/2 over white: the input of SDS on normal
maps), `depth` (view-space), and in training the mesh regularisers `loss_normal_consistency` and
`loss_laplacian_smoothness`, and the terms holding the starting surface `loss_normal_offset` / `loss_outward_offset`
(weighted by the system's `lambda_*`; skipped when the geometry is fixed).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ui3d import register
from ui3d.renderers import regularizers
from ui3d.renderers.rasterizer import Rasterization, get_rays, interpolate, rasterize
from ui3d.renderers.shading import vertex_normals

try:  # GPU users: nvdiffrast's CUDA rasterizer (as threestudio). Never required.
    import nvdiffrast.torch as dr
except Exception:  # ImportError, or a build that fails to load
    dr = None


def opengl_projection(fovy: Tensor, aspect: float, near: float = 0.01, far: float = 100.0) -> Tensor:
    """OpenGL perspective matrices [B, 4, 4] for vertical fields of view `fovy` [B] (radians), aspect W/H."""
    proj = fovy.new_zeros(len(fovy), 4, 4)
    cot = 1.0 / torch.tan(0.5 * fovy)
    proj[:, 0, 0], proj[:, 1, 1] = cot / aspect, cot
    proj[:, 2, 2], proj[:, 2, 3] = -(far + near) / (far - near), -2.0 * far * near / (far - near)
    proj[:, 3, 2] = -1.0
    return proj


def rasterize_nvdiffrast(context, vertices: Tensor, faces: Tensor, c2w: Tensor, fovy: Tensor, height: int,
                         width: int) -> Rasterization:
    """nvdiffrast's rasterization as a `Rasterization` (rows flipped to start at the top; its (u, v) weigh
    corners 0 and 1, the third weight is 1 − u − v)."""
    homogeneous = F.pad(vertices, (0, 1), value=1.0)
    camera = homogeneous @ torch.linalg.inv(c2w).transpose(1, 2)  # [B, V, 4]
    clip = camera @ opengl_projection(fovy, width / height).transpose(1, 2)
    rast, _ = dr.rasterize(context, clip.contiguous(), faces.int().contiguous(), (height, width))
    rast = rast.flip(1)
    tri_id = rast[..., 3].long() - 1
    u, v = rast[..., 0], rast[..., 1]
    bary = torch.stack([u, v, 1.0 - u - v], dim=-1) * (tri_id >= 0)[..., None]
    depth = interpolate(-camera[..., 2:3], Rasterization(tri_id, bary, bary[..., 0]), faces)[..., 0]
    return Rasterization(tri_id, bary, depth)


def downsample(image: Tensor, factor: int) -> Tensor:
    """Average factor×factor blocks of [B, H, W, C] images (the supersampling resolve)."""
    if factor == 1:
        return image
    return F.avg_pool2d(image.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)


@register("mesh-rasterizer")
class MeshRasterizer(nn.Module):
    """Renders `geometry.mesh()` with its albedo field, shaded by `material`, over `background`."""

    inputs = ("c2w", "fovy", "light_positions", "height", "width")
    """Batch keys `TextTo3DSystem.render` passes (cameras, not rays)."""
    losses = ("normal_consistency", "laplacian_smoothness", "normal_offset", "outward_offset")
    """The `loss_<name>` regularisers this renderer returns (weighted by the system's `lambda_<name>`)."""

    @dataclass
    class Config:
        """Rasterizer backend and anti-aliasing."""

        backend: str = "auto"
        """`auto` (nvdiffrast when importable and on CUDA), `torch` or `nvdiffrast`."""
        supersample: int = 1
        """Training renders are made this many times larger per side and averaged down (anti-aliasing)."""
        eval_supersample: int = 2
        """The same for validation and test renders."""

    def __init__(self, cfg: Config, geometry: nn.Module, material: nn.Module, background: nn.Module):
        super().__init__()
        if cfg.backend not in ("auto", "torch", "nvdiffrast"):
            raise ValueError(f"backend must be auto|torch|nvdiffrast, got {cfg.backend!r}")
        if cfg.backend == "nvdiffrast" and dr is None:
            raise RuntimeError("backend 'nvdiffrast' needs nvdiffrast installed; use backend 'auto' or 'torch'")
        self.cfg, self.geometry, self.material, self.background = cfg, geometry, material, background
        self._context = None

    def _rasterize(self, vertices: Tensor, faces: Tensor, c2w: Tensor, fovy: Tensor, height: int,
                   width: int) -> Rasterization:
        if dr is not None and vertices.is_cuda and self.cfg.backend != "torch":
            self._context = self._context or dr.RasterizeCudaContext(device=vertices.device)
            return rasterize_nvdiffrast(self._context, vertices, faces, c2w, fovy, height, width)
        return rasterize(vertices, faces, c2w, fovy, height, width)

    def forward(self, c2w: Tensor, fovy: Tensor, light_positions: Tensor, height: int, width: int,
                bg_color: Tensor | None = None, **material_kwargs: object) -> dict[str, Tensor]:
        """Render B views [B, H, W, C] lit by `light_positions` [B, 3]; `bg_color` replaces the background."""
        ss = self.cfg.supersample if self.training else self.cfg.eval_supersample
        h, w = int(height) * ss, int(width) * ss
        vertices, faces = self.geometry.mesh()
        rast = self._rasterize(vertices, faces, c2w, fovy, h, w)
        mask = rast.mask
        normal = F.normalize(interpolate(vertex_normals(vertices, faces), rast, faces), dim=-1)
        position = interpolate(vertices, rast, faces)
        _, rays_d = get_rays(c2w, fovy, h, w)
        bg = self.background(rays_d) if bg_color is None else bg_color.to(rays_d).expand_as(rays_d)
        light = light_positions[:, None, None].expand_as(rays_d)
        colour = self.material(features=self.geometry(position[mask])["features"], positions=position[mask],
                               shading_normal=normal[mask], light_positions=light[mask], viewdirs=rays_d[mask],
                               **material_kwargs)
        fg = torch.zeros_like(rays_d).index_put((mask,), colour)
        m = mask[..., None]
        full = {"comp_rgb": torch.where(m, fg, bg), "opacity": m.to(fg.dtype), "comp_normal": normal,
                "comp_normal_vis": torch.where(m, 0.5 * (normal + 1.0), torch.ones_like(normal)),
                "depth": rast.depth[..., None]}
        out = {key: downsample(value, ss) for key, value in full.items()}
        out["comp_rgb_bg"] = downsample(bg, ss)
        if self.training and not getattr(self.geometry.cfg, "fix_geometry", False):
            out.update(self.regularizers())
        return out

    def regularizers(self) -> dict[str, Tensor]:
        """`loss_normal_consistency` and `loss_laplacian_smoothness` (of the vertex offsets) of the mesh, and the
        offsets along the starting mesh's normals, `loss_normal_offset` (both ways) and `loss_outward_offset`
        (growth only): terms that hold the surface stage 2 started from (`regularizers.normal_offset`)."""
        vertices, faces = self.geometry.mesh()
        offsets, normals = self.geometry.vertex_offsets, self.geometry.base_normals
        return {
            "loss_normal_consistency": regularizers.normal_consistency(vertices, faces, self.geometry.face_pairs),
            "loss_laplacian_smoothness": regularizers.laplacian_smoothness(offsets, self.geometry.edges),
            "loss_normal_offset": regularizers.normal_offset(offsets, normals),
            "loss_outward_offset": regularizers.normal_offset(offsets, normals, outward_only=True),
        }

    def update_step(self, global_step: int) -> None:
        """Nothing is scheduled."""
