"""The mesh geometry: NeRF → mesh handoff keeps the silhouettes (IoU ≥ 0.95 against opacity > ½), copies or
fits the NeRF's albedo, loads checkpoints of any mesh size, and freezes its vertices for the texture stage."""
import pytest
import torch

from ui3d.config import build, load_config, stage_block
from ui3d.data.cameras import orbit_cameras
from ui3d.geometry.mesh_geometry import MeshGeometry
from ui3d.renderers.rasterizer import get_rays

SMALL_FIELD = {"triplane_resolution": 32, "n_features": 8, "mlp_hidden": 32}


def _nerf(**overrides):
    torch.manual_seed(0)
    return build("implicit-volume", {"density_blob_scale": 50.0, "density_blob_std": 0.35, **SMALL_FIELD,
                                     **overrides})


def _mesh(**overrides) -> MeshGeometry:
    return build("mesh-geometry", {**SMALL_FIELD, "isosurface_resolution": 48, "max_faces": 3000, **overrides})


def _renderers(nerf, mesh):
    material, background = build("no-material", {}), build("solid-color-background", {"color": [1, 1, 1]})
    volume = build("nerf-volume-renderer", {"num_samples_per_ray": 64, "grid_prune": False}, nerf, material,
                   background)
    raster = build("mesh-rasterizer", {"eval_supersample": 1}, mesh, material, background)
    return volume.eval(), raster.eval()


def test_handoff_preserves_silhouettes_and_albedo():
    nerf, mesh = _nerf(), _mesh()
    mesh.initialize_from(nerf)
    volume, raster = _renderers(nerf, mesh)
    cams = orbit_cameras(2, 20.0, 1.3, 55.0)
    size = 32
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy, size, size)
    with torch.no_grad():
        before = volume(rays_o, rays_d, cams.camera_positions)
        after = raster(cams.c2w, cams.fovy, cams.camera_positions, size, size)
    a, b = before["opacity"][..., 0] > 0.5, after["opacity"][..., 0] > 0.5
    iou = (a & b).sum() / (a | b).sum()
    assert iou >= 0.95, float(iou)
    both = a & b
    assert (before["comp_rgb"][both] - after["comp_rgb"][both]).abs().mean() < 0.05  # albedo branch copied


def test_albedo_is_fitted_when_encodings_differ():
    nerf = _nerf()
    mesh = _mesh(encoding="dense", grid_resolution=16, n_features=4, texture_fit_steps=60)
    mesh.initialize_from(nerf)
    points = mesh.sample_surface(512)
    with torch.no_grad():
        error = (mesh.albedo(points) - nerf(points)["features"]).abs().mean()
    assert error < 0.05


def test_checkpoint_of_another_mesh_size_loads_into_a_fresh_geometry():
    mesh = _mesh()
    mesh.initialize_from(_nerf())
    with torch.no_grad():
        mesh.vertex_offsets.add_(0.01)
    fresh = _mesh()
    assert fresh.faces.shape != mesh.faces.shape
    fresh.load_state_dict(mesh.state_dict())
    assert torch.equal(fresh.mesh()[0], mesh.mesh()[0]) and torch.equal(fresh.faces, mesh.faces)
    assert fresh.edges.shape == mesh.edges.shape and fresh.vertex_offsets.requires_grad


def test_copy_from_a_mesh_and_fixed_geometry():
    first = _mesh()
    first.initialize_from(_nerf())
    with torch.no_grad():
        first.vertex_offsets.normal_(0, 0.01)
    second = _mesh(fix_geometry=True)
    second.initialize_from(first)
    assert torch.allclose(second.mesh()[0], first.mesh()[0])
    assert not second.vertex_offsets.requires_grad
    points = first.sample_surface(64)
    assert torch.allclose(second.albedo(points), first.albedo(points))


def test_fixed_texture_trains_only_the_vertices_and_is_still_fitted_from_the_nerf():
    nerf = _nerf()
    mesh = _mesh(fix_texture=True, encoding="dense", grid_resolution=16, n_features=4, texture_fit_steps=60)
    mesh.initialize_from(nerf)
    trainable = [p for p in mesh.parameters() if p.requires_grad]
    assert len(trainable) == 1 and trainable[0] is mesh.vertex_offsets
    points = mesh.sample_surface(512)
    with torch.no_grad():
        assert (mesh.albedo(points) - nerf(points)["features"]).abs().mean() < 0.05


TUNED = {  # encoding fields away from their defaults (tiny sizes for speed)
    "concat-triplane": {"triplane_reduce": "concat", "triplane_resolution": 16, "n_features": 4, "mlp_hidden": 16,
                        "mlp_layers": 2},
    "hashgrid": {"encoding": "hashgrid", "hash_levels": 4, "hash_features_per_level": 4, "hash_log2_table_size": 10,
                 "hash_base_resolution": 8, "hash_per_level_scale": 1.6, "hash_backend": "torch", "mlp_hidden": 16},
}


@pytest.mark.parametrize("tuned", TUNED.values(), ids=list(TUNED))
def test_the_mesh_stages_take_a_tuned_nerfs_albedo_as_trained(tuned):
    """configs/uniinstruct-fkl.yaml with a NeRF tuned on its encoding (its mesh stages set none of these keys):
    the geometry and texture stages inherit them, so the albedo at surface points is the NeRF's, copied exactly
    rather than refitted."""
    overrides = [f"system.geometry.{key}={value}" for key, value in tuned.items()]
    cfg = load_config("uniinstruct-fkl.yaml", [*overrides, "system.geometry.density_blob_scale=50",
                                               "stages.geometry.system.geometry.isosurface_resolution=32"]).cfg
    torch.manual_seed(0)
    nerf, mesh, texture = (build(block.geometry_type, block.geometry)
                           for block in (stage_block(cfg, name).system for name in ("nerf", "geometry", "texture")))
    mesh.initialize_from(nerf)
    texture.initialize_from(mesh)
    points = mesh.sample_surface(256)
    with torch.no_grad():
        albedo = nerf(points)["features"]
        assert torch.equal(mesh.albedo(points), albedo) and torch.equal(texture.albedo(points), albedo)


def test_a_field_laid_out_otherwise_is_not_copied_even_when_its_tensors_fit():
    """The hash grid's per-level scale changes what each table row means, not the table's shape."""
    hashgrid = {"encoding": "hashgrid", "hash_levels": 2, "hash_log2_table_size": 8, "hash_backend": "torch"}
    nerf = _nerf(**hashgrid, hash_per_level_scale=1.6)
    mesh = _mesh(**hashgrid, texture_fit_steps=0)
    fresh = mesh.encoding.table.clone()
    assert fresh.shape == nerf.encoding.table.shape
    mesh.initialize_from(nerf)
    assert torch.equal(mesh.encoding.table, fresh)


def test_sphere_radius_projects_vertices_outside_the_sphere_onto_it_and_leaves_the_others():
    geo = MeshGeometry(MeshGeometry.Config(sphere_radius=0.5, initial_radius=0.35))
    inside = geo.base_vertices.clone()
    with torch.no_grad():
        geo.vertex_offsets[:10] = geo.base_vertices[:10]  # those ten now at radius 0.7
    vertices, _ = geo.mesh()
    assert torch.allclose(vertices[:10].norm(dim=-1), torch.full((10,), 0.5), atol=1e-6)
    assert torch.allclose(vertices[:10] / 0.5, inside[:10] / 0.35, atol=1e-6)  # radially
    assert torch.equal(vertices[10:], inside[10:])
    # a vertex on the bound cannot be pushed further out, only along the sphere or inwards
    (vertices * inside).sum().backward()  # a pull along each vertex's own radius, outwards
    assert geo.vertex_offsets.grad[:10].abs().max() < 1e-6
    assert geo.vertex_offsets.grad[10:].abs().max() > 0.1


def test_without_sphere_radius_the_mesh_is_unbounded():
    geo = MeshGeometry(MeshGeometry.Config(initial_radius=0.35))
    with torch.no_grad():
        geo.vertex_offsets += geo.base_vertices
    assert torch.allclose(geo.mesh()[0].norm(dim=-1), torch.full((len(geo.base_vertices),), 0.7), atol=1e-5)
    with pytest.raises(ValueError, match="sphere_radius"):
        MeshGeometry(MeshGeometry.Config(sphere_radius=0.0))
