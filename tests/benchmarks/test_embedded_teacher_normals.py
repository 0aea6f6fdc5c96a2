"""The embedded-teacher benchmark's normal-map scores: real normal maps pass them, shaded renders do not."""
import torch

from ui3d.benchmarks.embedded_teacher import nearest_category, normal_map_bank, unit_error
from ui3d.data.cameras import sample_cameras
from ui3d.teachers.embedded.dataset import render_object
from ui3d.teachers.embedded.objects import ObjectSpec
from ui3d.teachers.embedded.shapes import CATEGORIES


def test_real_normal_maps_decode_to_unit_vectors_and_shaded_renders_do_not():
    cams = sample_cameras(4, generator=torch.Generator().manual_seed(3))
    spec = ObjectSpec("vase", 0, "green", "striped")
    assert unit_error(render_object(spec, cams, 32, normal_map=True)).max() < 0.1
    assert unit_error(render_object(spec, cams, 32)).min() > 0.2
    assert unit_error(torch.ones(1, 3, 8, 8)).item() == 0.0  # an empty image has no foreground to score


def test_the_nearest_real_normal_map_names_the_category():
    bank, labels = normal_map_bank(cameras=3, seed=0, resolution=16)
    assert len(bank) == len(labels) and set(labels) == set(CATEGORIES)
    assert nearest_category(bank, bank, labels) == labels
    queries, _ = normal_map_bank(cameras=3, seed=5, resolution=16)
    # other cameras of the same shapes: mostly the right category (shapes differ more than cameras)
    accuracy = sum(p == t for p, t in zip(nearest_category(queries, bank, labels), labels)) / len(labels)
    assert accuracy > 0.5


def test_sample_grids_keep_the_order_one_row_each(tmp_path):
    import imageio.v3 as iio

    from ui3d.benchmarks.embedded_teacher import save_rows

    images = torch.zeros(6, 3, 2, 2)
    images[1, 0] = 1.0  # row 0, column 1: red
    images[3] = 1.0     # row 1, column 0: white
    save_rows(images, 2, tmp_path / "g.png")
    grid = iio.imread(tmp_path / "g.png")
    assert grid.shape == (4, 6, 3)
    assert tuple(grid[0, 2]) == (255, 0, 0) and tuple(grid[2, 0]) == (255, 255, 255) and grid[2, 2].sum() == 0
