"""The NeRF volume renderer: closed-form opacities, the blob init, normals, culling, gradients, chunking."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ui3d import find
from ui3d.background.solid_color_background import SolidColorBackground
from ui3d.data.cameras import make_cameras, orbit_cameras
from ui3d.geometry.implicit_volume import ImplicitVolume
from ui3d.materials.diffuse_with_point_light_material import DiffuseWithPointLightMaterial
from ui3d.materials.no_material import NoMaterial
from ui3d.renderers.nerf_volume_renderer import NeRFVolumeRenderer
from ui3d.renderers.rasterizer import get_rays
from ui3d.renderers.ray_sampling import ray_aabb_intersect


class ConstantField(nn.Module):
    """σ constant inside a ball (or the whole box when `ball` is None); grey albedo; radial normals."""

    def __init__(self, sigma: float, ball: float | None = None, radius: float = 0.7):
        super().__init__()
        self.cfg = SimpleNamespace(radius=radius)
        self.sigma, self.ball = sigma, ball
        self.offset = nn.Parameter(torch.zeros(()))

    def forward_density(self, points):
        inside = torch.ones_like(points[:, :1]) if self.ball is None else \
            (points.norm(dim=-1, keepdim=True) < self.ball).float()
        return self.sigma * inside

    def forward(self, points, with_normal=False):
        out = {"density": self.forward_density(points), "features": torch.full_like(points, 0.5) + self.offset}
        if with_normal:
            out["normal"] = nn.functional.normalize(points, dim=-1)
        return out


def make_renderer(geometry, material=None, **cfg) -> NeRFVolumeRenderer:
    material = material or NoMaterial()
    background = SolidColorBackground(SolidColorBackground.Config(color=(1.0, 1.0, 1.0)))
    return NeRFVolumeRenderer(NeRFVolumeRenderer.Config(**cfg), geometry, material, background)


def make_volume(**overrides) -> ImplicitVolume:
    torch.manual_seed(0)
    cfg = dict(triplane_resolution=16, n_features=8, grid_resolution=8, hash_levels=4, hash_log2_table_size=10,
               mlp_hidden=16)
    return ImplicitVolume(ImplicitVolume.Config(**{**cfg, **overrides}))


def rays(size: int = 16, elevation: float = 20.0, azimuth: float = 30.0, distance: float = 1.5, fovy: float = 60.0):
    cams = make_cameras(*(torch.tensor([v]) for v in (elevation, azimuth, distance, fovy)))
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, size, size)
    return rays_o, rays_d, cams.camera_positions


def test_registered():
    assert find("nerf-volume-renderer") is NeRFVolumeRenderer


def test_constant_box_opacity_is_exact():
    renderer = make_renderer(ConstantField(sigma=1.5), num_samples_per_ray=16).eval()
    rays_o, rays_d, light = rays()
    out = renderer(rays_o, rays_d, light)
    t_near, t_far, _ = ray_aabb_intersect(rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), 0.7)
    expected = 1.0 - torch.exp(-1.5 * (t_far - t_near))
    assert torch.allclose(out["opacity"].reshape(-1), expected, atol=1e-5)
    axis = make_renderer(ConstantField(sigma=1.5), num_samples_per_ray=4).eval()
    out = axis(torch.tensor([[[[1.5, 0.0, 0.0]]]]), torch.tensor([[[[-1.0, 0.0, 0.0]]]]), torch.zeros(1, 3))
    assert abs(out["opacity"].item() - (1.0 - torch.exp(torch.tensor(-1.5 * 1.4)).item())) < 1e-6


def test_sphere_opacity_matches_chord_length():
    renderer = make_renderer(ConstantField(sigma=1.0, ball=0.4), num_samples_per_ray=256, grid_prune=False).eval()
    rays_o, rays_d, light = rays(size=12)
    out = renderer(rays_o, rays_d, light)
    impact = torch.linalg.cross(rays_o, rays_d, dim=-1).norm(dim=-1)  # distance of each ray from the centre
    chord = 2.0 * (0.16 - impact**2).clamp(min=0.0).sqrt()
    assert (out["opacity"][..., 0] - (1.0 - torch.exp(-chord))).abs().max() < 0.02
    white = out["comp_rgb"][..., 0] - (1.0 - 0.5 * out["opacity"][..., 0])  # grey over white
    assert white.abs().max() < 1e-5


def test_blob_init_is_a_ball():
    renderer = make_renderer(make_volume()).eval()
    rays_o, rays_d, light = rays(size=16, fovy=70.0)
    out = renderer(rays_o, rays_d, light)
    impact = torch.linalg.cross(rays_o, rays_d, dim=-1).norm(dim=-1)
    assert out["opacity"][impact < 0.2].min() > 0.99
    assert out["opacity"][impact > 0.7].max() < 0.01  # the blob is soft: σ = softplus(−4) at the box face
    assert out["weights"].shape == (1, 16, 16, 64, 1) and out["normal"].shape == (1, 16, 16, 64, 3)


def test_rays_missing_the_box_see_the_background():
    renderer = make_renderer(ConstantField(sigma=5.0)).eval()
    rays_o, rays_d, light = rays(size=4)
    out = renderer(rays_o, -rays_d, light)  # looking away from the origin
    assert out["opacity"].abs().max() == 0 and torch.equal(out["comp_rgb"], torch.ones(1, 4, 4, 3))
    assert torch.equal(out["comp_normal_vis"], torch.ones(1, 4, 4, 3))


def test_composited_normals_face_the_camera():
    material = DiffuseWithPointLightMaterial(DiffuseWithPointLightMaterial.Config(ambient_only_steps=0))
    renderer = make_renderer(make_volume(), material).eval()
    rays_o, rays_d, light = rays(size=8, fovy=30.0)
    out = renderer(rays_o, rays_d, light)
    normal = nn.functional.normalize(out["comp_normal"], dim=-1)
    opaque = out["opacity"][..., 0] > 0.5
    surface = rays_o + rays_d * out["depth"] / out["opacity"]  # expected ray termination point
    radial = (normal * nn.functional.normalize(surface, dim=-1)).sum(-1)
    assert opaque.sum() > 20 and radial[opaque].min() > 0.95
    assert (normal * -rays_d).sum(-1)[opaque].min() > 0.0  # outward: towards the camera on the visible side
    assert ((out["comp_normal_vis"] >= 0) & (out["comp_normal_vis"] <= 1)).all()


def test_occupancy_culling_is_exact_and_skips_samples():
    volume = make_volume(density_blob_scale=20.0)
    renderer = make_renderer(volume, occupancy_threshold=1e-4).eval()
    counted = []
    forward = volume.forward
    volume.forward = lambda points, **kw: counted.append(len(points)) or forward(points, **kw)
    rays_o, rays_d, light = rays(size=24)
    with torch.no_grad():
        for _ in range(3):
            renderer.update_occupancy()
        culled = renderer(rays_o, rays_d, light)
        renderer.cfg.grid_prune = False
        full = renderer(rays_o, rays_d, light)
    assert counted[1] == renderer.samples_evaluated
    assert counted[0] < 0.35 * counted[1]
    for key in ("comp_rgb", "opacity", "depth", "comp_normal"):
        assert (culled[key] - full[key]).abs().max() < 2e-3, key


def test_update_step_refreshes_the_grid_on_schedule():
    renderer = make_renderer(ConstantField(sigma=1.0, ball=0.3), grid_resolution=8, grid_update_every=4)
    renderer.update_step(3)
    assert renderer.occupancy.binaries.all()
    renderer.update_step(4)
    assert 0 < renderer.occupancy.occupied_fraction < 0.5


@pytest.mark.parametrize("encoding", ["triplane", "dense", "hashgrid"])
def test_gradients_reach_the_encoding(encoding):
    material = DiffuseWithPointLightMaterial(DiffuseWithPointLightMaterial.Config(ambient_only_steps=0))
    renderer = make_renderer(make_volume(encoding=encoding), material, num_samples_per_ray=16).train()
    rays_o, rays_d, light = rays(size=6)
    out = renderer(rays_o, rays_d, light, shading="diffuse")
    (out["comp_rgb"].mean() + out["opacity"].mean()).backward()
    grads = [p.grad for p in renderer.geometry.encoding.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_eval_chunks_match_one_pass():
    renderer = make_renderer(make_volume()).eval()
    cams = orbit_cameras(2)
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, 6, 6)
    with torch.no_grad():
        whole = renderer(rays_o, rays_d, cams.camera_positions)
        renderer.cfg.eval_chunk = 7
        chunked = renderer(rays_o, rays_d, cams.camera_positions)
    assert whole.keys() == chunked.keys()
    assert all(torch.allclose(whole[k], chunked[k], atol=1e-6) for k in whole)


def test_training_batches_shaded_by_albedo_alone_skip_the_normals():
    """The shading is picked once per batch; an albedo batch needs no normals (3 field evaluations fewer per
    sample), a diffuse one and every evaluation render have them."""
    field = ConstantField(5.0, ball=0.3)
    calls = []
    forward = field.forward
    field.forward = lambda points, with_normal=False: calls.append(with_normal) or forward(points, with_normal)
    material = DiffuseWithPointLightMaterial(DiffuseWithPointLightMaterial.Config(ambient_only_steps=10))
    renderer = NeRFVolumeRenderer(NeRFVolumeRenderer.Config(num_samples_per_ray=8, grid_prune=False), field,
                                  material, SolidColorBackground(SolidColorBackground.Config()))
    cams = orbit_cameras(1, 10.0, 1.3, 55.0)
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, 4, 4)
    renderer.train()
    material.update_step(0)  # the ambient-only warm-up: albedo
    out = renderer(rays_o, rays_d, cams.camera_positions)
    assert calls == [False] and "normal" not in out
    material.update_step(10)
    out = renderer(rays_o, rays_d, cams.camera_positions, shading="diffuse")
    assert calls[-1] is True and "comp_normal" in out
    renderer.eval()
    material.update_step(0)
    renderer(rays_o, rays_d, cams.camera_positions)
    assert calls[-1] is True
