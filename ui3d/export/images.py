"""Validation grids and turntable videos."""
from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor

from ui3d import files


def to_uint8(image: Tensor) -> np.ndarray:
    """[H, W, C] in [0, 1] → uint8 RGB (grey channels repeated)."""
    image = image.detach().float().clamp(0, 1).cpu()
    if image.shape[-1] == 1:
        image = image.expand(*image.shape[:-1], 3)
    return (image.numpy() * 255 + 0.5).astype(np.uint8)


def save_grid(path: Path, out: dict, keys: tuple[str, ...] = ("comp_rgb", "comp_normal_vis", "opacity")) -> None:
    """threestudio's validation image: rgb | normal | opacity side by side for the first view of a render."""
    panels = [to_uint8(out[k][0]) for k in keys if k in out]
    with files.atomic_path(path) as tmp:
        iio.imwrite(tmp, np.concatenate(panels, axis=1))


def save_video(stem: Path, frames: list[Tensor], fps: int = 15) -> Path:
    """Frames [H, W, 3] in [0, 1] → `stem.mp4` (imageio-ffmpeg), or `stem.gif` where ffmpeg is unavailable."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack([to_uint8(f) for f in frames])
    if stack.shape[1] % 2 or stack.shape[2] % 2:  # yuv420p needs even sides
        stack = np.pad(stack, ((0, 0), (0, stack.shape[1] % 2), (0, stack.shape[2] % 2), (0, 0)), mode="edge")
    try:
        path = stem.with_suffix(".mp4")
        with files.atomic_path(path) as tmp:
            iio.imwrite(tmp, stack, fps=fps, codec="libx264", macro_block_size=1)
    except Exception:  # no ffmpeg backend: a gif needs nothing but pillow
        path = stem.with_suffix(".gif")
        with files.atomic_path(path) as tmp:
            iio.imwrite(tmp, stack, duration=1000 / fps, loop=0)
    return path


def read_video(path: Path) -> torch.Tensor:
    """Frames [N, H, W, 3] in [0, 1] of a saved turntable."""
    return torch.from_numpy(np.asarray(iio.imread(path))).float() / 255.0
