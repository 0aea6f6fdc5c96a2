"""Renders and samples of the embedded teacher's data set."""

import pytest
import torch

from ui3d.data.cameras import make_cameras, view_direction
from ui3d.teachers.embedded.dataset import (EmbeddedDataConfig, EmbeddedRenderDataset, category_grid, main,
                                            render_object)
from ui3d.teachers.embedded.objects import ObjectSpec, vocabulary
from ui3d.teachers.embedded.patterns import COLORS
from ui3d.teachers.embedded.shapes import CATEGORIES


def _front(n: int = 1, elevation: float = 0.0):
    full = torch.ones(n)
    return make_cameras(elevation * full, torch.zeros(n), 1.5 * full, 50.0 * full)


def test_render_of_a_plain_red_ball_is_red_on_white():
    image = render_object(ObjectSpec("ball", 0, "red", "plain"), _front(), 32)
    assert image.shape == (1, 3, 32, 32)
    assert torch.allclose(image[0, :, 0, 0], torch.ones(3))  # background corner
    centre = image[0, :, 16, 16]
    assert centre[0] > 0.6 and centre[1] < 0.2 and centre[2] < 0.2
    red = torch.tensor(COLORS["red"])
    assert torch.allclose(centre / centre[0], red / red[0], atol=0.02)  # shading scales the albedo only


def test_patterns_and_background_are_visible():
    plain = render_object(ObjectSpec("vase", 0, "blue", "plain"), _front(), 48)
    striped = render_object(ObjectSpec("vase", 0, "blue", "striped"), _front(), 48)
    green = render_object(ObjectSpec("vase", 0, "blue", "plain"), _front(), 48, background=(0.0, 1.0, 0.0))
    assert (striped - plain).abs().amax(dim=1).gt(0.3).float().mean() > 0.05
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_dataset_items_are_deterministic_labelled_and_in_range():
    cfg = EmbeddedDataConfig(resolution=16, size=50)
    data = EmbeddedRenderDataset(cfg)
    item = data[3]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert torch.equal(item["image"], EmbeddedRenderDataset(cfg)[3]["image"])
    assert item["prompt"] == EmbeddedRenderDataset(cfg)[3]["prompt"]
    assert item["prompt"].endswith(f", {item['view']} view") and item["category"] in item["prompt"]
    assert set(item["prompt"].replace(",", " ,").split()) <= set(vocabulary())
    assert -10 <= item["elevation_deg"] <= 45 and 1.0 <= item["camera_distance"] <= 1.5
    assert len(data) == 50
    with pytest.raises(IndexError):
        data[50]


def test_splits_are_disjoint_streams():
    cfg = EmbeddedDataConfig(resolution=8)
    train, val = EmbeddedRenderDataset(cfg, "train"), EmbeddedRenderDataset(cfg, "val")
    pairs = [(train[i], val[i]) for i in range(4)]
    assert any(a["prompt"] != b["prompt"] or not torch.equal(a["image"], b["image"]) for a, b in pairs)
    assert train[0]["azimuth_deg"] != val[0]["azimuth_deg"]
    with pytest.raises(KeyError, match="train"):
        EmbeddedRenderDataset(cfg, "holdout")


def test_labels_cover_the_vocabulary():
    data = EmbeddedRenderDataset(EmbeddedDataConfig())
    described = [data.describe(i) for i in range(300)]
    assert {spec.category for spec, _, _ in described} == set(CATEGORIES)
    assert {spec.color for spec, _, _ in described} == set(COLORS)
    views = [view_direction(cams.elevation_deg, cams.azimuth_deg)[0] for _, cams, _ in described]
    assert set(views) == {"front", "side", "back"}
    assert all(prompt.endswith(f", {view} view") for (_, _, prompt), view in zip(described, views))
    assert any(spec.color not in prompt for spec, _, prompt in described)  # colour dropout
    assert data[7]["prompt"] == described[7][2]


def test_category_grid_and_command(tmp_path):
    image, prompts = category_grid(columns=2, resolution=8)
    assert image.shape == (3, 8 * len(CATEGORIES), 16)
    assert [row[0].split(",")[0].split()[-1] for row in prompts] == list(CATEGORIES)
    main(["--grid", str(tmp_path / "grid.png"), "--columns", "1", "--resolution", "8"])
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "grid.txt").exists()


def test_a_normal_map_render_decodes_to_the_normals_facing_the_camera():
    cams = _front()
    image = render_object(ObjectSpec("ball", 0, "red", "striped"), cams, 32, normal_map=True)
    assert torch.allclose(image[0, :, 0, 0], torch.ones(3))  # background
    to_camera = torch.nn.functional.normalize(cams.camera_positions[0], dim=0)
    assert torch.allclose(2 * image[0, :, 16, 16] - 1, to_camera, atol=0.05)
    fg = (image[0] < 0.98).any(dim=0)
    assert ((2 * image[0, :, fg] - 1).norm(dim=0) - 1).abs().median() < 0.05  # unit normals inside the silhouette
    # the pattern and colour do not show in a normal map
    assert torch.equal(image, render_object(ObjectSpec("ball", 0, "blue", "plain"), cams, 32, normal_map=True))


def test_normal_map_items_are_prompted_by_style_and_category_and_leave_the_shaded_items_alone():
    base = EmbeddedRenderDataset(EmbeddedDataConfig(resolution=8))
    mixed = EmbeddedRenderDataset(EmbeddedDataConfig(resolution=8, normal_map_prob=0.5))
    described = [(mixed.describe(i), base.describe(i)) for i in range(60)]
    styled = [m for m, _ in described if m[2].startswith("a normal map of ")]
    assert 15 < len(styled) < 45
    for (spec, cams, prompt), (bspec, _, bprompt) in described:
        assert spec == bspec
        if prompt.startswith("a normal map of "):
            view = view_direction(cams.elevation_deg, cams.azimuth_deg)[0]
            assert prompt == f"a normal map of a {spec.category}, {view} view"
        else:
            assert prompt == bprompt
    i = next(i for i, ((_, _, p), _) in enumerate(described) if p.startswith("a normal map"))
    item = mixed[i]
    assert item["normal_map"] and not base[i]["normal_map"]
    assert not torch.equal(item["image"], base[i]["image"])
    assert set(item["prompt"].replace(",", " ,").split()) <= set(vocabulary())
