"""A pure-PyTorch z-buffer triangle rasterizer for CPU (the fallback when nvdiffrast is absent; DESIGN.md §5).

Cameras follow threestudio / OpenGL: a camera-to-world matrix `c2w` [B, 4, 4] whose camera looks along its −z
axis with +y up, and a vertical field of view `fovy` [B] in radians; focal length f = ½·H / tan(½·fovy) in
pixels, principal point at the image centre, pixel (i, j) (column, row; row 0 at the top) sampled at its centre
(i + ½, j + ½) — the same rays as `get_rays`.

`rasterize` finds, for every pixel, the nearest triangle covering the pixel centre (per-triangle bounding-box
candidates, all views and triangles vectorised, a 64-bit depth|id key reduced with `scatter_reduce(amin)`) and
its perspective-correct barycentrics. Visibility is discrete (no gradient), but the barycentrics and depth are
recomputed differentiably from the vertex positions for the winning triangles, so `interpolate` is
differentiable w.r.t. vertex attributes and — while the pixel→triangle assignment stays fixed — w.r.t. vertex
positions and cameras. There is no anti-aliasing or silhouette gradient: supersample for smooth edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_NO_HIT = torch.iinfo(torch.int64).max


@dataclass
class Rasterization:
    """Per-pixel output of `rasterize` for B views of H×W pixels."""

    tri_id: Tensor
    """[B, H, W] int64 index of the visible triangle, −1 for background."""
    bary: Tensor
    """[B, H, W, 3] perspective-correct barycentrics of the pixel centre (zeros for background)."""
    depth: Tensor
    """[B, H, W] view-space depth, the distance along the camera's −z axis (0 for background)."""

    @property
    def mask(self) -> Tensor:
        """[B, H, W] bool, True where a triangle is visible."""
        return self.tri_id >= 0


def focal_length(fovy: Tensor, height: int) -> Tensor:
    """Focal length in pixels, f = ½·H / tan(½·fovy) (fovy in radians)."""
    return 0.5 * height / torch.tan(0.5 * fovy)


def world_to_camera(points: Tensor, c2w: Tensor) -> Tensor:
    """Points [V, 3] or [B, V, 3] in world space → [B, V, 3] in each camera's frame (c2w [B, 4, 4])."""
    rotation, origin = c2w[:, :3, :3], c2w[:, :3, 3]
    return (points - origin[:, None]) @ rotation


def project(points_cam: Tensor, focal: Tensor, height: int, width: int) -> Tensor:
    """Camera-frame points [B, V, 3] → [B, V, 3] of (pixel x, pixel y, depth w = −z)."""
    x, y, z = points_cam.unbind(-1)
    w = -z
    f = focal[:, None]
    return torch.stack([f * x / w + 0.5 * width, -f * y / w + 0.5 * height, w], dim=-1)


def get_rays(c2w: Tensor, fovy: Tensor, height: int, width: int, normalize: bool = True) -> tuple[Tensor, Tensor]:
    """Rays through the pixel centres as threestudio's `get_rays`: origins and directions, each [B, H, W, 3]."""
    f = focal_length(fovy, height)[:, None, None]
    j, i = torch.meshgrid(torch.arange(height, dtype=c2w.dtype), torch.arange(width, dtype=c2w.dtype),
                          indexing="ij")
    x, y = (i + 0.5 - 0.5 * width) / f, -(j + 0.5 - 0.5 * height) / f
    directions = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B, H, W, 3] camera frame
    rays_d = (directions[..., None, :] * c2w[:, None, None, :3, :3]).sum(-1)
    if normalize:
        rays_d = torch.nn.functional.normalize(rays_d, dim=-1)
    rays_o = c2w[:, None, None, :3, 3].expand_as(rays_d)
    return rays_o, rays_d


def _screen_barycentrics(tri: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, Tensor]:
    """Screen-space barycentrics [N, 3] of pixel centres (px, py) in triangles tri [N, 3, 3] (x, y, w),
    and their perspective-correct version as a tuple (screen, perspective) — depth is 1 / Σ b_k / w_k."""
    (x0, y0, w0), (x1, y1, w1), (x2, y2, w2) = (tri[:, k].unbind(-1) for k in range(3))
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    b0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
    b1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
    screen = torch.stack([b0, b1, 1.0 - b0 - b1], dim=-1)
    q = screen / torch.stack([w0, w1, w2], dim=-1)
    return screen, q


def _candidates(tris: Tensor, valid: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """All (triangle, pixel x, pixel y) whose pixel centre lies in the triangle's bounding box, over tris
    [N, 3, 3] in screen space; returns three int64 tensors of equal length."""
    lo, hi = tris[..., :2].amin(dim=1), tris[..., :2].amax(dim=1)
    x0 = torch.ceil(lo[:, 0] - 0.5).clamp(0, width).long()
    x1 = torch.floor(hi[:, 0] - 0.5).clamp(-1, width - 1).long()
    y0 = torch.ceil(lo[:, 1] - 0.5).clamp(0, height).long()
    y1 = torch.floor(hi[:, 1] - 0.5).clamp(-1, height - 1).long()
    nx, ny = (x1 - x0 + 1).clamp(min=0), (y1 - y0 + 1).clamp(min=0)
    count = torch.where(valid, nx * ny, 0)
    tri = torch.repeat_interleave(torch.arange(len(tris)), count)
    start = torch.cumsum(count, 0) - count
    k = torch.arange(len(tri)) - start[tri]
    return tri, x0[tri] + k % nx[tri], y0[tri] + torch.div(k, nx[tri], rounding_mode="floor")


def rasterize(vertices: Tensor, faces: Tensor, c2w: Tensor, fovy: Tensor, height: int, width: int,
              near: float = 1e-3) -> Rasterization:
    """Rasterize one mesh (vertices [V, 3] or per-view [B, V, 3], faces [F, 3]) into B views.

    Triangles with a vertex closer than `near` to the camera plane are dropped (no clipping); both faces of a
    triangle are drawn (no culling). Pixels are covered when the centre lies inside or on an edge.
    """
    batch, n_faces = c2w.shape[0], faces.shape[0]
    screen = project(world_to_camera(vertices, c2w), focal_length(fovy, height), height, width)
    tris = screen[:, faces].reshape(batch * n_faces, 3, 3)  # [B·F, corner, (x, y, w)]
    with torch.no_grad():
        t = tris.detach().float()
        edge = (t[:, 1, :2] - t[:, 0, :2], t[:, 2, :2] - t[:, 0, :2])
        area = edge[0][:, 0] * edge[1][:, 1] - edge[1][:, 0] * edge[0][:, 1]
        valid = (t[:, :, 2].amin(dim=1) > near) & (area.abs() > 1e-10)
        tri, px, py = _candidates(t, valid, height, width)
        screen_b, q = _screen_barycentrics(t[tri], px + 0.5, py + 0.5)
        inside = (screen_b >= 0).all(dim=-1)
        tri, px, py, depth = tri[inside], px[inside], py[inside], 1.0 / q[inside].sum(-1)
        pixel = (torch.div(tri, n_faces, rounding_mode="floor") * height + py) * width + px
        key = (depth.view(torch.int32).long() << 32) | (tri % n_faces)
        zbuf = torch.full((batch * height * width,), _NO_HIT, dtype=torch.int64)
        zbuf.scatter_reduce_(0, pixel, key, reduce="amin")
        hit = torch.nonzero(zbuf != _NO_HIT).squeeze(1)
        face = zbuf[hit] & 0xFFFFFFFF
        view = torch.div(hit, height * width, rounding_mode="floor")
        hx, hy = hit % width, torch.div(hit, width, rounding_mode="floor") % height
    _, q = _screen_barycentrics(tris[view * n_faces + face], hx.to(tris.dtype) + 0.5, hy.to(tris.dtype) + 0.5)
    s = q.sum(-1, keepdim=True)
    n_pix = batch * height * width
    bary = tris.new_zeros(n_pix, 3).index_copy(0, hit, q / s)
    depth = tris.new_zeros(n_pix).index_copy(0, hit, 1.0 / s.squeeze(-1))
    tri_id = torch.full((n_pix,), -1, dtype=torch.int64).index_copy(0, hit, face)
    shape = (batch, height, width)
    return Rasterization(tri_id.view(shape), bary.view(*shape, 3), depth.view(shape))


def interpolate(attr: Tensor, rast: Rasterization, faces: Tensor | None) -> Tensor:
    """Interpolate attributes at the pixels with the rasterization's barycentrics → [B, H, W, C].

    `attr` is per vertex [V, C] or per view and vertex [B, V, C] (indexed through `faces` [F, 3]), or per face
    corner [F, 3, C] with `faces=None` (e.g. flat or crease-aware normals). Background pixels get zeros.
    Differentiable w.r.t. `attr` and `rast.bary` (hence the vertex positions, for a fixed assignment).
    """
    batch = rast.tri_id.shape[0]
    tid = rast.tri_id.clamp(min=0).view(batch, -1)  # [B, P]
    if faces is None:
        corners = attr[tid]  # [B, P, 3, C]
    elif attr.dim() == 3:
        corners = attr[torch.arange(batch)[:, None, None], faces[tid]]
    else:
        corners = attr[faces[tid]]
    out = (rast.bary.view(batch, -1, 3, 1) * corners).sum(dim=2)
    out = out * rast.mask.view(batch, -1, 1)
    return out.view(*rast.tri_id.shape, attr.shape[-1])
