"""A turntable video of the exported, textured mesh: what a viewer will show (UV lookup of the baked texture,
Lambert + ambient light from the camera, white background), rendered with the pure-PyTorch rasterizer."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from ui3d.data.cameras import orbit_cameras
from ui3d.export.images import save_video
from ui3d.export.uv import UVMesh, sample_texture
from ui3d.renderers.mesh_rasterizer import downsample
from ui3d.renderers.rasterizer import interpolate, rasterize
from ui3d.renderers.shading import camera_light, composite, lambert, vertex_normals


def render_textured(mesh: UVMesh, texture: Tensor, c2w: Tensor, fovy: Tensor, size: int, supersample: int = 2
                    ) -> Tensor:
    """Images [B, size, size, 3] in [0, 1] of a UV-textured mesh seen by cameras c2w [B, 4, 4], fovy [B]."""
    side = size * supersample
    rast = rasterize(mesh.vertices, mesh.faces, c2w, fovy, side, side)
    uv = interpolate(mesh.uv, rast, mesh.faces)
    normal = interpolate(vertex_normals(mesh.vertices, mesh.faces), rast, mesh.faces)
    albedo = sample_texture(texture, uv)
    light = camera_light(c2w)[:, None, None].expand_as(normal)
    rgb = composite(lambert(albedo, normal, light, ambient=0.5, diffuse=0.5), rast.mask)
    return downsample(rgb, supersample)


@torch.no_grad()
def save_turntable(stem: Path, mesh: UVMesh, texture: Tensor, n_views: int = 30, size: int = 256,
                   elevation_deg: float = 15.0, distance: float | None = None, fovy_deg: float = 55.0) -> Path:
    """Render `n_views` frames around the z axis and write `stem.mp4` (or `.gif`); returns the path. The
    default `distance` frames the mesh's bounding sphere (about the origin) with a 15% margin."""
    if distance is None:
        distance = 1.15 * float(mesh.vertices.norm(dim=-1).max()) / math.sin(math.radians(0.5 * fovy_deg))
    cams = orbit_cameras(n_views, elevation_deg, distance, fovy_deg)
    frames = [render_textured(mesh, texture, cams.c2w[i:i + 1], cams.fovy[i:i + 1], size)[0]
              for i in range(n_views)]
    return save_video(stem, frames)
