"""The unet-teacher's real images for the discriminator: its own samples (`real_data: teacher`) or MNIST training
digits with their labels as conditions (`real_data: mnist`), disjoint from the test digits the metrics use; a
teacher MNIST does not fit is refused."""
import pytest
import torch

from tests.tiny_models import build_tiny_unet_folder
from ui3d.config import ConfigError
from ui3d.data.mnist import load_mnist
from ui3d.distill2d.teachers import UNetTeacher


def teacher(folder, real_data: str) -> UNetTeacher:
    return UNetTeacher(UNetTeacher.Config(pretrained_model_name_or_path=str(folder), real_data=real_data,
                                          real_pool=4, real_steps=2))


def positions(x: torch.Tensor, images: torch.Tensor) -> list[list[int]]:
    """For each of x, the indices of the images it equals pixel for pixel."""
    flat = images.flatten(1)
    return [torch.nonzero((flat == xi.flatten()).all(1)).flatten().tolist() for xi in x]


@pytest.mark.parametrize("resolution", [16, 28])
def test_mnist_gives_training_digits_with_their_labels(tmp_path, resolution):
    x, cond = teacher(build_tiny_unet_folder(tmp_path, resolution=resolution), "mnist").real(
        64, torch.Generator().manual_seed(0))
    train, labels = load_mnist("train", resolution)
    assert x.shape == (64, 1, resolution, resolution) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0  # the teacher's x_0 range, background at −1
    found = positions(x, train)
    assert all(found) and cond.dtype == torch.int64  # every one a training digit, its label its condition
    assert all(int(c) in labels[idx].tolist() for c, idx in zip(cond, found))
    assert len(set(cond.tolist())) > 5  # labels of the digits drawn, not one class
    test_digits, _ = load_mnist("test", resolution)
    assert not any(positions(x, test_digits))  # none is a test digit (the FID reference)


def test_mnist_on_an_unconditional_teacher_gives_no_conditions(tmp_path):
    x, cond = teacher(build_tiny_unet_folder(tmp_path, classes=None, resolution=16), "mnist").real(
        4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 16, 16) and cond is None


def test_teacher_real_data_is_the_teacher_sample_pool(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the pool caches under the working directory
    t = teacher(build_tiny_unet_folder(tmp_path / "unet", resolution=16), "teacher")
    x, cond = t.real(6, torch.Generator().manual_seed(0))
    pool, pool_cond = t._pool
    assert len(pool) == 4 and all(len(found) >= 1 for found in positions(x, pool))
    assert all(int(c) in pool_cond[idx].tolist() for c, idx in zip(cond, positions(x, pool)))


@pytest.mark.parametrize("classes, resolution, message", [(11, 8, "1-channel teacher of side 16, 28, 32"),
                                                          (4, 16, "this one has 4 class embeddings")])
def test_mnist_on_a_teacher_it_does_not_fit_is_refused(tmp_path, classes, resolution, message):
    folder = build_tiny_unet_folder(tmp_path, classes=classes, resolution=resolution)
    cfg = UNetTeacher.Config(pretrained_model_name_or_path=str(folder), real_data="mnist")
    with pytest.raises(ConfigError, match=message):
        UNetTeacher.check(cfg)
    with pytest.raises(ConfigError, match=message):
        UNetTeacher(cfg)


def test_unknown_real_data_is_refused():
    with pytest.raises(ConfigError, match="real_data 'cifar' is not one of teacher, mnist"):
        UNetTeacher.Config(real_data="cifar")
