"""The "real" images of Uni-Instruct's discriminator in text-to-3D (DESIGN §5): samples of the teacher itself,
drawn once per (teacher, prompt, view bucket) with multi-step DDIM + CFG and cached on disk, or a user folder.

Cache files are `<cache_dir>/<sha1>.pt` (uint8 images), keyed by the teacher's fingerprint (path@mtime) and a
digest of its weights, the prompt, pool size, steps, guidance scale and resolution; `.cache/` is git-ignored.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d import files
from ui3d.diffusion.samplers import ddim
from ui3d.distill.discriminator import REAL_POOL_CACHE_DIR
from ui3d.guidance.base import view_bucket
from ui3d.teachers.teacher import DiffusionTeacher

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def fingerprint(teacher: DiffusionTeacher) -> str:
    """A cheap digest of the teacher's weights (first and last convolutions), so a retrained teacher of the
    same name does not reuse stale samples."""
    unet = teacher.unet
    parts = [getattr(unet, name, None) for name in ("conv_in", "conv_out")]
    values = [float(m.weight.double().sum()) for m in parts if m is not None]
    return ",".join(f"{v:.6e}" for v in values)


def load_folder(folder: Path, resolution: int) -> Tensor:
    """Every image in `folder` as [N, 3, R, R] in [0, 1] (resized to the teacher resolution)."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in real_images_dir {folder}")
    images = []
    for path in files:
        with Image.open(path) as image:
            array = torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8)
            images.append(array.view(image.height, image.width, 3).permute(2, 0, 1).float()[None] / 255)
    return torch.cat([F.interpolate(x, (resolution, resolution), mode="bilinear", antialias=True,
                                    align_corners=False) for x in images]).clamp(0, 1)


class RealPool:
    """Real images per (prompt, view bucket): teacher samples cached on disk, or a user folder."""

    def __init__(self, teacher: DiffusionTeacher, size: int = 16, steps: int = 25, guidance_scale: float = 7.5,
                 cache_dir: str | Path = REAL_POOL_CACHE_DIR, images_dir: str | None = None, batch: int = 8):
        self.teacher, self.size, self.steps, self.guidance_scale = teacher, size, steps, guidance_scale
        self.cache_dir, self.batch = Path(cache_dir), batch
        self.images_dir = Path(images_dir).expanduser() if images_dir else None
        if self.images_dir is not None and not self.images_dir.is_dir():
            raise FileNotFoundError(f"real_images_dir {self.images_dir} is not a folder")
        self._pools: dict[tuple[str, str], Tensor] = {}

    def sample(self, prompts: Sequence[str], directions: Sequence[str] | None = None) -> Tensor:
        """One random real image per prompt, from its (prompt, view bucket) pool: [B, 3, R, R] in [0, 1]."""
        directions = directions or [None] * len(prompts)
        picks = []
        for prompt, direction in zip(prompts, directions):
            pool = self.images(prompt, direction)
            picks.append(pool[torch.randint(len(pool), ())])
        return torch.stack(picks).to(self.teacher.device)

    def images(self, prompt: str, direction: str | None = None) -> Tensor:
        """The whole pool of a prompt's view bucket (generated or loaded on first use, then kept in memory)."""
        bucket = view_bucket(prompt, direction)
        key = (prompt, bucket) if self.images_dir is None else ("", bucket)
        if key not in self._pools:
            self._pools[key] = self._from_folder(bucket) if self.images_dir else self._cached(prompt)
        return self._pools[key]

    def _from_folder(self, bucket: str) -> Tensor:
        """`real_images_dir/<bucket>/` when it exists, else the images directly in `real_images_dir`."""
        sub = self.images_dir / bucket if bucket else None
        return load_folder(sub if sub is not None and sub.is_dir() else self.images_dir, self.teacher.resolution)

    def cache_path(self, prompt: str) -> Path:
        teacher_id = getattr(self.teacher, "fingerprint", self.teacher.name)  # the loader's path@mtime
        spec = (f"{teacher_id}|{fingerprint(self.teacher)}|{prompt}|{self.size}|{self.steps}|"
                f"{self.guidance_scale}|{self.teacher.resolution}")
        return self.cache_dir / f"{hashlib.sha1(spec.encode()).hexdigest()}.pt"

    def _cached(self, prompt: str) -> Tensor:
        path = self.cache_path(prompt)
        cached = files.load_cache(path, "real-pool cache")
        if isinstance(cached, dict) and "images" in cached:
            return cached["images"].float() / 255
        images = self.generate(prompt)
        files.torch_save({"prompt": prompt, "images": (images * 255).round().to(torch.uint8)}, path)
        return (images * 255).round() / 255

    def _cfg_denoiser(self, cond: Tensor, uncond: Tensor):
        return lambda x, t: self.teacher.denoise_cfg(x, t, cond, uncond, self.guidance_scale)

    @torch.no_grad()
    def generate(self, prompt: str) -> Tensor:
        """`size` teacher samples of `prompt` (DDIM, `steps` steps, CFG), [N, 3, R, R] in [0, 1] on the CPU."""
        teacher = self.teacher
        cond, uncond = teacher.encode_text([prompt]), teacher.encode_text([""])
        seed = int(hashlib.sha1(prompt.encode()).hexdigest()[:8], 16)
        generator = torch.Generator().manual_seed(seed)
        channels, side = teacher.unet.config.in_channels, int(teacher.unet.config.sample_size)
        out = []
        for start in range(0, self.size, self.batch):
            n = min(self.batch, self.size - start)
            noise = torch.randn(n, channels, side, side, generator=generator).to(teacher.device)
            x0 = ddim(self._cfg_denoiser(cond.expand(n, -1, -1), uncond.expand(n, -1, -1)), noise,
                      teacher.schedule, self.steps)
            out.append(teacher.decode(x0).float().cpu())
        return torch.cat(out)
