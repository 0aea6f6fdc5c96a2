"""The "real" data of the density-ratio discriminator (DESIGN §3.3, §5), in 2D distillation and text-to-3D alike:
samples of the teacher itself, drawn once with batched DDIM + CFG (`ui3d.diffusion.samplers.sample_ddim`) and
cached on disk, or (text-to-3D) a user folder of images.

- 2D teachers (`draw`): one pool of x_0 samples with the conditions they were drawn with, the teacher's own
  condition sampling seeded by the run's seed.
- text-to-3D (`images`, `sample`): a pool per prompt, decoded to images in [0, 1] and stored as uint8, seeded by
  the prompt; with `images_dir`, the user's images per view bucket instead.

A teacher is anything with `shape` (of one x_0), `schedule`, `prediction_type`, `denoise_cfg(x_t, t, cond, uncond,
guidance_scale)` and `state_dict()` (the weights its samples depend on): `DiffusionTeacher` and the 2D teachers.
Cache files are `<cache_dir>/<sha1>.pt`, the sha1 of the pool's `fingerprint` (a digest of the teacher's weights
and schedule, and the pool settings) and the pool's key, holding {"key", "samples", "conditions"}; read with
`ui3d.files` (weights_only) and written atomically. `.cache/` is git-ignored.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d import files
from ui3d.diffusion.samplers import Conditions, sample_ddim

REAL_POOL_CACHE_DIR = ".cache/ui3d/real_pool"
"""Where the teacher samples the discriminator reads as "real" images are cached (git-ignored)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
ADAPTER_MARK = "lora_"
"""peft adapter tensors (a fake score's LoRA on the teacher UNet) are not the teacher's weights."""


def weights_digest(state: Mapping[str, Tensor]) -> str:
    """sha1 of a state dict (names, dtypes, shapes and bytes of every tensor): a retrained or changed teacher gets
    a new digest. Adapters a fake score adds to the teacher (`lora_*`, and the `.base_layer` they move wrapped
    weights to) are left out, so the digest is the teacher's with or without them."""
    named = {}
    for name, value in state.items():
        if ADAPTER_MARK not in name and isinstance(value, Tensor):
            named[name.replace(".base_layer", "")] = value
    digest = hashlib.sha1()
    for name in sorted(named):
        value = named[name].detach()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def view_bucket(prompt: str, direction: str | None = None) -> str:
    """The view word after the comma ("a red vase, side view" → "side"), else `direction`, else ""."""
    _, sep, tail = prompt.rpartition(",")
    words = tail.split()
    if sep and len(words) == 2 and words[1] == "view":
        return words[0]
    return direction or ""


def load_folder(folder: Path, resolution: int) -> Tensor:
    """Every image in `folder` as [N, 3, R, R] in [0, 1] (resized to the teacher resolution)."""
    from PIL import Image

    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in real_images_dir {folder}")
    images = []
    for path in found:
        with Image.open(path) as image:
            array = torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8)
            images.append(array.view(image.height, image.width, 3).permute(2, 0, 1).float()[None] / 255)
    return torch.cat([F.interpolate(x, (resolution, resolution), mode="bilinear", antialias=True,
                                    align_corners=False) for x in images]).clamp(0, 1)


class RealPool:
    """`size` teacher samples per key (`steps`-step DDIM, CFG at `guidance_scale`, `batch` at a time), made on
    first use, cached on disk and kept in memory; or, in text-to-3D, the images of `images_dir`."""

    def __init__(self, teacher, size: int = 16, steps: int = 25, guidance_scale: float = 7.5,
                 cache_dir: str | Path = REAL_POOL_CACHE_DIR, images_dir: str | None = None, batch: int = 8):
        self.teacher, self.size, self.steps, self.guidance_scale = teacher, size, steps, guidance_scale
        self.cache_dir, self.batch = Path(cache_dir), batch
        self.images_dir = Path(images_dir).expanduser() if images_dir else None
        if self.images_dir is not None and not self.images_dir.is_dir():
            raise FileNotFoundError(f"real_images_dir {self.images_dir} is not a folder")
        self._pools: dict[tuple[str, str], object] = {}
        self._fingerprint: Optional[str] = None

    # --- one fingerprint, one cache --------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """What every sample of this pool depends on: the teacher's weights and schedule (a digest of both, so a
        retrained teacher does not reuse stale samples) and the pool settings. Computed once."""
        if self._fingerprint is None:
            teacher = self.teacher
            schedule = weights_digest({"alphas_cumprod": teacher.schedule.alphas_cumprod})
            spec = (f"{weights_digest(teacher.state_dict())}|{schedule}|{teacher.prediction_type}|"
                    f"{tuple(teacher.shape)}|{self.size}|{self.steps}|{self.guidance_scale}|{self.batch}")
            self._fingerprint = hashlib.sha1(spec.encode()).hexdigest()
        return self._fingerprint

    def cache_path(self, key: str) -> Path:
        return self.cache_dir / f"{hashlib.sha1(f'{self.fingerprint()}|{key}'.encode()).hexdigest()}.pt"

    def _cached(self, key: str, make: Callable[[], dict]) -> dict:
        """The cache file of `key` ({"key", "samples", "conditions"}), made by `make` and written when absent."""
        path = self.cache_path(key)
        cached = files.load_cache(path, "real-pool cache")
        if isinstance(cached, dict) and isinstance(cached.get("samples"), Tensor):
            return cached
        entry = {"key": key, "conditions": None, **make()}
        files.torch_save(entry, path)
        return entry

    @torch.no_grad()
    def _sample(self, conditions: Conditions, seed: int,
                finish: Optional[Callable[[Tensor], Tensor]] = None) -> tuple[Tensor, list]:
        teacher = self.teacher
        return sample_ddim(lambda x, t, cond, uncond: teacher.denoise_cfg(x, t, cond, uncond, self.guidance_scale),
                           conditions, tuple(teacher.shape), self.size, teacher.schedule, self.steps,
                           torch.Generator().manual_seed(seed), self.batch, getattr(teacher, "device", None), finish)

    # --- 2D teachers: x_0 samples with their conditions --------------------------------------------------------
    def draw(self, seed: int, key: str = "") -> tuple[Tensor, Optional[Tensor]]:
        """The pool of x_0 samples and their conditions (None for an unconditional teacher), drawn with the
        teacher's `conditions` from a generator seeded by `seed`; `key` names what else the conditions depend on
        (e.g. the prompt list)."""
        name = f"draw|{seed}|{key}"
        if (name, "") not in self._pools:
            def make() -> dict:
                x, drawn = self._sample(self.teacher.conditions, seed)
                cond = [c for c, _, _ in drawn]
                return {"samples": x, "conditions": None if cond[0] is None else torch.cat(cond)}

            entry = self._cached(name, make)
            self._pools[(name, "")] = (entry["samples"], entry["conditions"])
        return self._pools[(name, "")]

    # --- text-to-3D: images per prompt and view bucket ----------------------------------------------------------
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
            if self.images_dir is not None:
                self._pools[key] = self._from_folder(bucket)
            else:
                entry = self._cached(prompt, lambda: {"samples": (self.generate(prompt) * 255).round().to(torch.uint8)})
                self._pools[key] = entry["samples"].float() / 255
        return self._pools[key]

    def _from_folder(self, bucket: str) -> Tensor:
        """`real_images_dir/<bucket>/` when it exists, else the images directly in `real_images_dir`."""
        sub = self.images_dir / bucket if bucket else None
        return load_folder(sub if sub is not None and sub.is_dir() else self.images_dir, self.teacher.resolution)

    @torch.no_grad()
    def generate(self, prompt: str) -> Tensor:
        """`size` teacher samples of `prompt` (DDIM, `steps` steps, CFG), [N, 3, R, R] in [0, 1] on the CPU."""
        teacher = self.teacher
        cond, uncond = teacher.encode_text([prompt]), teacher.encode_text([""])
        seed = int(hashlib.sha1(prompt.encode()).hexdigest()[:8], 16)
        images, _ = self._sample(lambda n, g: (cond.expand(n, -1, -1), uncond.expand(n, -1, -1), [prompt] * n), seed,
                                 lambda x0: teacher.decode(x0).float().cpu())
        return images
