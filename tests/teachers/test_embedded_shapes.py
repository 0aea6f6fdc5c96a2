"""Procedural objects of the embedded teacher: meshes, patterns, prompts, vocabulary."""

import numpy as np
import pytest
import torch
import trimesh

from ui3d.teachers.embedded.objects import ObjectSpec, all_specs, object_prompt, textured_mesh, vocabulary
from ui3d.teachers.embedded.patterns import COLORS, PATTERNS, PatternFrame, albedo, pattern_mask
from ui3d.teachers.embedded.shapes import CATEGORIES, RADIUS, build_mesh, num_variants


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_variant_is_a_small_closed_normalised_mesh(category):
    assert num_variants(category) >= 3
    for variant in range(num_variants(category)):
        mesh = build_mesh(category, variant)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        assert 100 <= len(mesh.faces) <= 5000
        radius = np.linalg.norm(mesh.vertices, axis=1).max()
        assert radius == pytest.approx(RADIUS, abs=1e-9)
        assert np.abs(mesh.bounds.mean(axis=0)).max() < 1e-9  # bounding box centred at the origin
        assert (mesh.area_faces > 0).all()


def test_categories_and_variants_differ():
    assert len(CATEGORIES) >= 8 and len(COLORS) >= 6 and len(PATTERNS) >= 3
    extents = {c: tuple(build_mesh(c, 0).extents.round(3)) for c in CATEGORIES}
    assert len(set(extents.values())) == len(CATEGORIES)
    assert not np.allclose(build_mesh("vase", 0).vertices[:50], build_mesh("vase", 1).vertices[:50])
    with pytest.raises(KeyError, match="vase"):
        build_mesh("teapot")
    with pytest.raises(IndexError):
        build_mesh("vase", 99)


def test_mug_has_a_handle_on_plus_y_and_vessels_are_open():
    mug = build_mesh("mug", 0)
    assert mug.vertices[:, 1].max() > 1.2 * mug.vertices[:, 0].max()
    assert mug.body_count == 2  # cup body and handle
    cup = build_mesh("cup", 0)  # a vertical ray down the axis hits the inner floor, not the rim
    top = cup.vertices[:, 2].max()
    floor = cup.vertices[np.linalg.norm(cup.vertices[:, :2], axis=1) < 1e-9, 2]
    assert floor.max() < top - 0.5 * cup.extents[2]


@pytest.mark.parametrize("pattern,fraction", [("plain", 0.0), ("striped", 0.5), ("dotted", np.pi * 0.09),
                                              ("checkered", 0.5)])
def test_pattern_coverage(pattern, fraction):
    st = torch.rand(2, 20000, generator=torch.Generator().manual_seed(0)) * 8 - 4
    assert pattern_mask(st[0], st[1], pattern).float().mean().item() == pytest.approx(fraction, abs=0.02)


def test_albedo_uses_the_named_colours():
    points = torch.rand(100, 3) - 0.5
    normals = torch.nn.functional.normalize(points, dim=-1)
    red = albedo(points, normals, "red", "plain", PatternFrame())
    assert torch.allclose(red, torch.tensor(COLORS["red"]).expand(100, 3))
    striped = albedo(points, normals, "blue", "striped", PatternFrame())
    assert len(torch.unique(striped, dim=0)) == 2
    with pytest.raises(KeyError, match="red"):
        albedo(points, normals, "teal", "plain", PatternFrame())


def test_prompts_and_vocabulary():
    assert object_prompt(ObjectSpec("vase", 0, "red", "striped")) == "a red striped vase"
    assert object_prompt(ObjectSpec("mug", 1, "orange", "dotted")) == "an orange dotted mug"
    assert object_prompt(ObjectSpec("vase", 0, "red", "plain")) == "a plain red vase"
    assert object_prompt(ObjectSpec("vase", 0, "red", "plain"), with_color=False) == "a plain vase"
    assert object_prompt(ObjectSpec("box", 0, "blue", "checkered"), with_pattern=False) == "a blue box"
    assert object_prompt(ObjectSpec("ball", 0, "blue", "dotted"), False, False) == "a ball"
    words = set(vocabulary())
    assert {"front", "side", "back", "overhead", "view", ","} <= words
    specs = all_specs()
    assert len(specs) == len({(s.category, s.variant, s.color, s.pattern) for s in specs})
    for spec in specs[::7]:
        assert set(object_prompt(spec).split()) <= words


def test_textured_mesh_exports_with_vertex_colours(tmp_path):
    mesh = textured_mesh(ObjectSpec("mug", 0, "blue", "dotted"))
    colors = mesh.visual.vertex_colors
    assert colors.shape == (len(mesh.vertices), 4)
    assert len(np.unique(colors[:, :3], axis=0)) == 2  # blue and the white dots
    mesh.export(tmp_path / "mug.ply")
    loaded = trimesh.load(tmp_path / "mug.ply", process=False)
    assert len(loaded.faces) == len(mesh.faces)
    assert np.array_equal(loaded.visual.vertex_colors, colors)
