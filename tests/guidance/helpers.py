"""Helpers of the guidance tests: prompt embeddings as the prompt processor hands them, guidance builders."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from ui3d.guidance import sds, uniinstruct, vsd
from ui3d.registry import find

REGISTERED = (sds, vsd, uniinstruct)
"""Imported so that `find` sees them without importing the whole package."""
PROMPTS = ["a red vase, side view", "a vase, front view"]


def prompt_embeds(teacher, prompts=PROMPTS) -> SimpleNamespace:
    """What the prompt processor hands a guidance: view-dependent cond, uncond, prompts, directions."""
    return SimpleNamespace(cond=teacher.encode_text(prompts), uncond=teacher.encode_text([""] * len(prompts)),
                           prompts=list(prompts), directions=[p.rsplit(", ", 1)[1].split()[0] for p in prompts])


def make_guidance(name: str, teacher, cache_dir, **overrides):
    """A registered guidance with a tiny real pool (2 samples, 2 DDIM steps)."""
    cls = find(name)
    if name == "uniinstruct":
        overrides = {"real_pool_size": 2, "real_sampling_steps": 2, "real_pool_cache_dir": str(cache_dir),
                     **overrides}
    return cls(cls.Config(**overrides), teacher)


def cameras(n: int = 2) -> torch.Tensor:
    """Distinct camera-to-world matrices [n, 4, 4]."""
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, :3, 3] = torch.randn(n, 3)
    return c2w
