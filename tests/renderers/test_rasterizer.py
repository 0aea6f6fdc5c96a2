"""The pure-PyTorch rasterizer against trimesh ray casting, and its gradients."""

import numpy as np
import pytest
import torch
import trimesh

from ui3d.data.cameras import make_cameras
from ui3d.renderers.rasterizer import focal_length, get_rays, interpolate, project, rasterize, world_to_camera
from ui3d.teachers.embedded.shapes import build_mesh


class _BoundsTree:
    """Broad phase for trimesh's `ray_triangle_id` in numpy (rtree, trimesh's default, is not a dependency)."""

    def __init__(self, triangles: np.ndarray) -> None:
        self.lo, self.hi = triangles.min(axis=1), triangles.max(axis=1)
        self.bounds = np.concatenate([self.lo.min(axis=0), self.hi.max(axis=0)])

    def intersection(self, box: np.ndarray) -> np.ndarray:
        return np.flatnonzero(((self.lo <= box[3:]) & (self.hi >= box[:3])).all(axis=1))


def _ray_cast(mesh: trimesh.Trimesh, origins: np.ndarray, directions: np.ndarray):
    """trimesh ray casting: (triangle, ray, location) of the first hit of every ray that hits."""
    return trimesh.ray.ray_triangle.ray_triangle_id(
        mesh.triangles, origins, directions, tree=_BoundsTree(mesh.triangles), multiple_hits=False)


def _cameras(elevation, azimuth, distance, fovy):
    t = torch.tensor
    return make_cameras(t(elevation, dtype=torch.float32), t(azimuth, dtype=torch.float32),
                        t(distance, dtype=torch.float32), t(fovy, dtype=torch.float32))


@pytest.mark.parametrize("category,variant", [("mug", 0), ("vase", 2), ("box", 2), ("donut", 0), ("goblet", 0)])
def test_matches_trimesh_ray_casting(category, variant):
    mesh = build_mesh(category, variant)
    cams = _cameras([30.0, -5.0], [20.0, 200.0], [1.2, 1.5], [60.0, 45.0])
    size = 40
    v, f = torch.as_tensor(mesh.vertices, dtype=torch.float32), torch.as_tensor(mesh.faces)
    rast = rasterize(v, f, cams.c2w, cams.fovy, size, size)
    rays_o, rays_d = get_rays(cams.c2w.double(), cams.fovy.double(), size, size)
    tri, ray, loc = _ray_cast(mesh, rays_o.reshape(-1, 3).numpy(), rays_d.reshape(-1, 3).numpy())
    tri_ref = torch.full((rays_o[..., 0].numel(),), -1, dtype=torch.int64)
    tri_ref[torch.as_tensor(ray)] = torch.as_tensor(tri)
    depth_ref = torch.zeros(rays_o[..., 0].numel(), dtype=torch.float64)
    forward = -cams.c2w[:, :3, 2].double().repeat_interleave(size * size, dim=0)
    hit = torch.as_tensor(loc) - rays_o.reshape(-1, 3)[ray]
    depth_ref[torch.as_tensor(ray)] = (hit * forward[ray]).sum(-1)
    tri_ref, depth_ref = tri_ref.view(rast.tri_id.shape), depth_ref.view(rast.depth.shape)
    assert rast.mask.float().mean() > 0.1
    assert (rast.tri_id == tri_ref).float().mean() >= 0.99
    both = rast.mask & (tri_ref >= 0)
    close = (rast.depth.double() - depth_ref).abs() < 1e-4
    assert (close | ~both).float().mean() >= 0.99
    assert (rast.mask == (tri_ref >= 0)).float().mean() >= 0.99


def test_interpolated_positions_lie_on_pixel_rays():
    mesh = build_mesh("ball", 1)
    cams = _cameras([10.0], [45.0], [1.3], [50.0])
    v, f = torch.as_tensor(mesh.vertices, dtype=torch.float32), torch.as_tensor(mesh.faces)
    rast = rasterize(v, f, cams.c2w, cams.fovy, 24, 32)
    points = interpolate(v, rast, f)
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, 24, 32, normalize=False)  # unit z component: t = depth
    expected = rays_o + rast.depth[..., None] * rays_d
    assert torch.allclose(points[rast.mask], expected[rast.mask], atol=1e-4)
    assert torch.allclose(rast.bary.sum(-1)[rast.mask], torch.ones(()), atol=1e-5)
    assert (points[~rast.mask] == 0).all() and (rast.tri_id[~rast.mask] == -1).all()


def test_projection_inverts_rays():
    cams = _cameras([20.0, 0.0], [0.0, 120.0], [1.5, 1.0], [40.0, 70.0])
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, 6, 10)
    points = (rays_o + 0.7 * rays_d).reshape(2, -1, 3)
    xyw = project(world_to_camera(points, cams.c2w), focal_length(cams.fovy, 6), 6, 10)
    j, i = torch.meshgrid(torch.arange(6.0), torch.arange(10.0), indexing="ij")
    assert torch.allclose(xyw[..., 0], (i + 0.5).reshape(1, -1).expand(2, -1), atol=1e-4)
    assert torch.allclose(xyw[..., 1], (j + 0.5).reshape(1, -1).expand(2, -1), atol=1e-4)


def _tiny_scene():
    vertices = torch.tensor([[0.1, -0.5, -0.4], [-0.1, 0.45, -0.3], [0.0, 0.05, 0.5], [0.2, 0.6, 0.5]],
                            dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    cams = _cameras([15.0], [10.0], [1.5], [55.0])
    return vertices, faces, cams.c2w.double(), cams.fovy.double()


def test_interpolate_gradcheck_attributes_and_positions():
    vertices, faces, c2w, fovy = _tiny_scene()
    fixed = rasterize(vertices, faces, c2w, fovy, 8, 8)
    assert fixed.mask.sum() > 10

    def render(v, attr):
        rast = rasterize(v, faces, c2w, fovy, 8, 8)
        assert torch.equal(rast.tri_id, fixed.tri_id)  # assignment unchanged by the tiny perturbations
        return interpolate(attr, rast, faces), rast.depth

    attr = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(render, (vertices.requires_grad_(), attr.requires_grad_()))


def test_interpolate_per_corner_and_per_view_attributes():
    vertices, faces, c2w, fovy = _tiny_scene()
    c2w2, fovy2 = c2w.repeat(2, 1, 1), fovy.repeat(2)
    rast = rasterize(vertices, faces, c2w2, fovy2, 8, 8)
    attr = torch.randn(4, 3, dtype=torch.float64)
    per_vertex = interpolate(attr, rast, faces)
    assert torch.allclose(interpolate(attr[faces], rast, None), per_vertex)
    assert torch.allclose(interpolate(attr.expand(2, 4, 3), rast, faces), per_vertex)
    assert torch.equal(per_vertex[0], per_vertex[1])
