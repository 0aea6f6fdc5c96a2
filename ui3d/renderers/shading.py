"""Normals and simple shading for rasterized meshes: crease-aware normals, Lambert + ambient, compositing.

All functions are differentiable torch code, so stage 2 (normal-SDS geometry refinement) can reuse them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def face_normals(vertices: Tensor, faces: Tensor, normalize: bool = True) -> Tensor:
    """Face normals [F, 3] (counter-clockwise winding is the front); unnormalised ones have norm 2·area."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    return torch.nn.functional.normalize(n, dim=-1) if normalize else n


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals [V, 3]."""
    n = face_normals(vertices, faces, normalize=False)
    acc = torch.zeros_like(vertices).index_add(0, faces.reshape(-1), n.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(acc, dim=-1)


def outward_vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals [V, 3] pointing out of a closed mesh wound either way (the side read from
    the sign of its volume, 1/6 Σ v0 · (v1 × v2))."""
    normals = vertex_normals(vertices, faces)
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    return -normals if (v0 * torch.linalg.cross(v1, v2, dim=-1)).sum() < 0 else normals


def corner_normals(vertices: Tensor, faces: Tensor, crease_deg: float = 40.0) -> Tensor:
    """Per-corner normals [F, 3, 3]: the smooth vertex normal, or the face normal where the two differ by more
    than `crease_deg` (flat faces of a box, the base of a cone stay sharp)."""
    n_face = face_normals(vertices, faces)[:, None]  # [F, 1, 3]
    n_vert = vertex_normals(vertices, faces)[faces]  # [F, 3, 3]
    smooth = (n_face * n_vert).sum(-1, keepdim=True) > math.cos(math.radians(crease_deg))
    return torch.where(smooth, n_vert, n_face.expand_as(n_vert))


def face_forward(normals: Tensor, view_dirs: Tensor) -> Tensor:
    """Flip normals [..., 3] that face away from the viewer (view_dirs [..., 3] point from camera to surface)."""
    facing_away = (normals * view_dirs).sum(-1, keepdim=True) > 0
    return torch.where(facing_away, -normals, normals)


def lambert(albedo: Tensor, normals: Tensor, light_dirs: Tensor, ambient: float = 0.35,
            diffuse: float = 0.65) -> Tensor:
    """Lambert + ambient shading: albedo · (ambient + diffuse · max(0, n·l)); light_dirs point to the light."""
    cos = (torch.nn.functional.normalize(normals, dim=-1) * light_dirs).sum(-1, keepdim=True).clamp(min=0)
    return albedo * (ambient + diffuse * cos)


def composite(rgb: Tensor, mask: Tensor, background: Tensor | tuple[float, float, float] = (1.0, 1.0, 1.0)
              ) -> Tensor:
    """Put rgb [..., 3] over a background colour (or image [..., 3]) where mask [...] is False."""
    background = torch.as_tensor(background, dtype=rgb.dtype)
    return torch.where(mask[..., None], rgb, background)


def camera_light(c2w: Tensor, direction: tuple[float, float, float] = (-0.4, 0.6, 1.0)) -> Tensor:
    """World-space unit light directions [B, 3] given in each camera's frame (default: from the upper left
    behind the viewer, so every view is lit from the front)."""
    d = torch.nn.functional.normalize(c2w.new_tensor(direction), dim=0)
    return c2w[:, :3, :3] @ d
