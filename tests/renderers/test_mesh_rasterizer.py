"""The mesh rasterizer: output keys and ranges, anti-aliased edges, gradients into the vertex offsets (through
the normal map) and the texture field (through the colours), and the mesh regularisers."""
import pytest
import torch
import trimesh

from ui3d.config import build
from ui3d.data.cameras import orbit_cameras
from ui3d.renderers.regularizers import laplacian_smoothness, mesh_topology, normal_consistency, normal_offset
from ui3d.renderers.shading import outward_vertex_normals


def _scene(supersample: int = 1, **geometry):
    torch.manual_seed(0)
    mesh = build("mesh-geometry", {"triplane_resolution": 16, "n_features": 4, "mlp_hidden": 16, **geometry})
    material = build("diffuse-with-point-light-material", {"ambient_only_steps": 0})
    background = build("solid-color-background", {"color": [1, 1, 1]})
    return build("mesh-rasterizer", {"supersample": supersample, "eval_supersample": 2}, mesh, material,
                 background)


def _render(renderer, size=24, n=2):
    cams = orbit_cameras(n, 20.0, 1.2, 55.0)
    return renderer(cams.c2w, cams.fovy, cams.camera_positions, size, size, shading="diffuse")


def test_outputs_and_ranges():
    renderer = _scene().train()
    out = _render(renderer)
    for key in ("comp_rgb", "comp_normal_vis", "comp_normal"):
        assert out[key].shape == (2, 24, 24, 3)
    assert out["opacity"].shape == out["depth"].shape == (2, 24, 24, 1)
    background = out["opacity"][..., 0] == 0
    assert background.any() and (~background).any()
    assert torch.all(out["comp_normal_vis"][background] == 1.0) and torch.all(out["comp_rgb"][background] == 1.0)
    assert 0.0 <= float(out["comp_normal_vis"].min()) and float(out["comp_normal_vis"].max()) <= 1.0
    assert {"loss_normal_consistency", "loss_laplacian_smoothness", "loss_normal_offset",
            "loss_outward_offset"} == {f"loss_{name}" for name in renderer.losses} <= set(out)  # what lambda_ may weigh


def test_supersampling_gives_fractional_edges():
    with torch.no_grad():
        opacity = _render(_scene().eval())["opacity"]
    edge = (opacity > 0) & (opacity < 1)
    assert edge.any()


def test_gradients_reach_vertex_offsets_and_texture():
    renderer = _scene().train()
    geometry = renderer.geometry
    out = _render(renderer)
    (out["comp_normal_vis"].mean() + out["comp_rgb"].mean()).backward()
    assert geometry.vertex_offsets.grad is not None and geometry.vertex_offsets.grad.abs().sum() > 0
    texture = [p.grad for p in geometry.feature_network.parameters()] + [geometry.encoding.planes.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in texture)


def test_fixed_geometry_has_no_regularisers():
    out = _render(_scene(fix_geometry=True).train())
    assert "loss_normal_consistency" not in out


def test_regularisers():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    vertices, faces = torch.tensor(sphere.vertices, dtype=torch.float32), torch.tensor(sphere.faces)
    edges, pairs = mesh_topology(faces)
    assert len(edges) == len(sphere.edges_unique) and len(pairs) == len(edges)  # closed: every edge has 2 faces
    smooth = normal_consistency(vertices, faces, pairs)
    bumpy = normal_consistency(vertices * (1 + 0.2 * torch.rand(len(vertices), 1)), faces, pairs)
    assert 0 <= smooth < bumpy
    assert laplacian_smoothness(torch.ones(len(vertices), 3) * 0.3, edges) == pytest.approx(0.0, abs=1e-10)
    assert laplacian_smoothness(torch.randn(len(vertices), 3), edges) > 0.1


@pytest.mark.parametrize("flip", [False, True])
def test_normal_offset_holds_the_surface_along_its_outward_normals(flip):
    """Offsets along the starting mesh's outward normals cost d² (growth only with `outward_only`), offsets that
    slide along the surface cost nothing, and the faces' winding does not change the side."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    vertices, faces = torch.tensor(sphere.vertices, dtype=torch.float32), torch.tensor(sphere.faces)
    if flip:
        faces = faces.flip(1)
    outward = torch.nn.functional.normalize(vertices, dim=-1)  # a sphere's outward normals
    normals = outward_vertex_normals(vertices, faces)
    tangent = torch.nn.functional.normalize(torch.linalg.cross(outward, torch.randn(len(vertices), 3), dim=-1), dim=-1)
    assert normal_offset(0.03 * outward, normals) == pytest.approx(0.03**2, rel=1e-3)
    assert normal_offset(-0.03 * outward, normals) == pytest.approx(0.03**2, rel=1e-3)
    assert normal_offset(0.03 * outward, normals, outward_only=True) == pytest.approx(0.03**2, rel=1e-3)
    assert normal_offset(-0.03 * outward, normals, outward_only=True) == pytest.approx(0.0, abs=1e-12)
    assert normal_offset(0.03 * tangent, normals) < 1e-3 * 0.03**2


def test_normal_offset_pulls_the_vertices_back():
    """Gradient steps on the term alone bring a grown mesh back to where it started."""
    renderer = _scene().train()
    geometry = renderer.geometry
    with torch.no_grad():
        geometry.vertex_offsets.copy_(0.05 * torch.nn.functional.normalize(geometry.base_vertices, dim=-1))
    optimizer = torch.optim.SGD([geometry.vertex_offsets], lr=0.4)
    for _ in range(20):
        optimizer.zero_grad()
        loss = renderer.regularizers()["loss_outward_offset"] * len(geometry.base_vertices)
        loss.backward()
        optimizer.step()
    assert geometry.vertex_offsets.norm(dim=-1).max() < 0.005
