"""UV atlas and texture bake: a known colour field baked into an xatlas atlas reads back at surface points
(bilinear lookup at their UVs) within 2/255 inside the charts; dilation pads past the chart borders."""
import torch
import trimesh

from ui3d.export.uv import bake_texture, dilate, rasterize_uv, sample_texture, unwrap


def colour_field(points: torch.Tensor) -> torch.Tensor:
    x, y, z = points.unbind(-1)
    return torch.stack([0.5 + 0.4 * torch.sin(3 * x + 1), 0.5 + 0.4 * torch.cos(2 * y - z), 0.5 + 0.3 * z], -1)


def _surface_points(mesh, n: int, generator):
    face = torch.randint(len(mesh.faces), (n,), generator=generator)
    bary = torch.distributions.Dirichlet(torch.ones(3)).sample((n,))
    corners = mesh.faces[face]
    return (bary[..., None] * mesh.vertices[corners]).sum(1), (bary[..., None] * mesh.uv[corners]).sum(1)


def test_bake_round_trip_on_interior_texels():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    mesh = unwrap(torch.tensor(sphere.vertices, dtype=torch.float32), torch.tensor(sphere.faces), resolution=512)
    size = 512
    texture, mask = bake_texture(mesh, colour_field, size)
    points, uv = _surface_points(mesh, 4000, torch.Generator().manual_seed(0))
    # keep points whose four bilinear taps are all covered texels (the interior of the charts)
    x, y = uv[:, 0] * size - 0.5, (1 - uv[:, 1]) * size - 0.5
    x0, y0 = x.floor().long().clamp(0, size - 2), y.floor().long().clamp(0, size - 2)
    interior = mask[y0, x0] & mask[y0 + 1, x0] & mask[y0, x0 + 1] & mask[y0 + 1, x0 + 1]
    assert interior.float().mean() > 0.8
    error = (sample_texture(texture, uv[interior]) - colour_field(points[interior])).abs().mean()
    assert error < 2.0 / 255.0


def test_uv_rasterization_covers_each_texel_once():
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    face_id, bary = rasterize_uv(uv, faces, 16)
    assert (face_id >= 0).all()
    assert torch.allclose(bary.sum(-1), torch.ones(16, 16), atol=1e-5)


def test_dilation_pads_past_chart_borders():
    image = torch.zeros(8, 8, 3)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    image[2:4, 2:4], mask[2:4, 2:4] = torch.tensor([0.2, 0.4, 0.6]), True
    out = dilate(image, mask, iterations=2)
    assert torch.allclose(out[0:6, 0:6], torch.tensor([0.2, 0.4, 0.6]).expand(6, 6, 3))
    assert torch.allclose(out[7, 7], torch.tensor([0.2, 0.4, 0.6]))  # beyond the padding: the mean colour
