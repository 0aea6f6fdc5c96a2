"""UV atlas and texture baking: xatlas unwrap, rasterisation in UV space, seam padding (threestudio's
`mesh-exporter`, which uses xatlas and nvdiffrast's UV-space rasterisation the same way).

UVs follow the OBJ convention (v = 0 at the bottom of the image); texel (column i, row j) of an S×S texture has
its centre at u = (i + ½)/S, v = 1 − (j + ½)/S. Baking rasterises every UV triangle into the texture, takes the
3D surface point of each covered texel centre by barycentric interpolation and asks a colour function there.
Uncovered texels next to charts are filled by dilation (the mean of covered neighbours, repeated), so bilinear
lookups and mip-maps near seams do not bleed the background in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d.renderers.rasterizer import _candidates, _screen_barycentrics


@dataclass
class UVMesh:
    """A mesh split along its UV seams: every vertex has one position and one UV."""

    vertices: Tensor
    """[V, 3] float positions."""
    faces: Tensor
    """[F, 3] int64 (counter-clockwise seen from outside)."""
    uv: Tensor
    """[V, 2] float in [0, 1], OBJ convention (v up)."""
    source_index: Tensor
    """[V] int64 index of each vertex in the mesh before unwrapping."""


def unwrap(vertices: Tensor, faces: Tensor, padding: int = 2, resolution: int = 1024) -> UVMesh:
    """xatlas UV atlas of a mesh (vertices are duplicated along seams). `padding` texels between charts at
    the atlas `resolution` leave room for the bake's dilation."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices.detach().cpu().numpy().astype(np.float32), faces.cpu().numpy().astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.padding, pack.resolution, pack.bilinear = padding, resolution, True
    atlas.generate(pack_options=pack)
    vmapping, new_faces, uv = atlas[0]
    index = torch.from_numpy(vmapping.astype(np.int64))
    return UVMesh(vertices.detach().cpu()[index].float(), torch.from_numpy(new_faces.astype(np.int64)),
                  torch.from_numpy(uv.astype(np.float32)), index)


def rasterize_uv(uv: Tensor, faces: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The UV triangle covering each texel centre of an S×S texture: face id [S, S] (−1 where none) and
    barycentrics [S, S, 3]. Charts do not overlap, so no depth test is needed."""
    pixel = torch.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size, torch.ones(len(uv))], dim=-1)
    tris = pixel[faces].double()  # [F, 3, (x, y, w=1)]
    edge1, edge2 = tris[:, 1, :2] - tris[:, 0, :2], tris[:, 2, :2] - tris[:, 0, :2]
    valid = (edge1[:, 0] * edge2[:, 1] - edge2[:, 0] * edge1[:, 1]).abs() > 1e-12
    tri, px, py = _candidates(tris, valid, size, size)
    bary, _ = _screen_barycentrics(tris[tri], px + 0.5, py + 0.5)
    inside = (bary >= -1e-9).all(dim=-1)
    texel = py[inside] * size + px[inside]
    face_id = torch.full((size * size,), -1, dtype=torch.int64).index_copy_(0, texel, tri[inside])
    bary_map = torch.zeros(size * size, 3).index_copy_(0, texel, bary[inside].float())
    return face_id.view(size, size), bary_map.view(size, size, 3)


def dilate(image: Tensor, mask: Tensor, iterations: int = 8) -> Tensor:
    """Fill uncovered texels (mask False) next to covered ones with the mean of their covered 3×3 neighbours,
    `iterations` times; the rest get the mean colour of the covered texels. image [S, S, C], mask [S, S]."""
    colour = (image * mask[..., None]).permute(2, 0, 1)[None]
    weight = mask.float()[None, None]
    kernel = torch.ones(1, 1, 3, 3)
    for _ in range(iterations):
        total = F.conv2d(colour, kernel.expand(colour.shape[1], 1, 3, 3), padding=1, groups=colour.shape[1])
        count = F.conv2d(weight, kernel, padding=1)
        grow = (weight == 0) & (count > 0)
        colour = torch.where(grow, total / count.clamp(min=1), colour)
        weight = torch.where(grow, torch.ones_like(weight), weight)
    out = colour[0].permute(1, 2, 0)
    if bool(mask.any()):
        out = torch.where(weight[0, 0, ..., None] > 0, out, image[mask].mean(0))
    return out


def bake_texture(mesh: UVMesh, colour_fn: Callable[[Tensor], Tensor], size: int = 512, padding: int = 8,
                 chunk: int = 65536) -> tuple[Tensor, Tensor]:
    """Texture [S, S, 3] in [0, 1] of `colour_fn` (points [N, 3] → colours [N, 3]) at the surface point of
    every covered texel, padded `padding` texels past chart borders; also the coverage mask [S, S]."""
    face_id, bary = rasterize_uv(mesh.uv, mesh.faces, size)
    mask = face_id >= 0
    corners = mesh.vertices[mesh.faces[face_id[mask]]]  # [N, 3, 3]
    points = (bary[mask][..., None] * corners).sum(1)
    with torch.no_grad():
        colours = torch.cat([colour_fn(p).detach().float().cpu() for p in points.split(chunk)]) if len(points) \
            else torch.zeros(0, 3)
    image = torch.zeros(size, size, 3)
    image[mask] = colours.clamp(0, 1)
    return dilate(image, mask, padding), mask


def sample_texture(texture: Tensor, uv: Tensor) -> Tensor:
    """Bilinear lookup of a texture [S, S, C] at UVs [..., 2] (OBJ convention) → [..., C]."""
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1).reshape(1, 1, -1, 2)
    out = F.grid_sample(texture.permute(2, 0, 1)[None].to(uv), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[0, :, 0].T.reshape(*uv.shape[:-1], texture.shape[-1])
