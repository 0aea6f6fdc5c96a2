"""Lambertian shading under a point light (DreamFusion; threestudio's `diffuse-with-point-light-material`).

colour = albedo ⊙ (ambient + diffuse · max(0, n·l)), l the unit vector from the surface point to the light.
During training threestudio picks one shading per batch: plain albedo with probability 1 − `diffuse_prob`,
otherwise textureless (white albedo) with probability `textureless_prob`, else the shaded colour — and plain
albedo only for the first `ambient_only_steps` steps (the ambient warm-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ui3d import register

SHADINGS = ("albedo", "textureless", "diffuse")


@register("diffuse-with-point-light-material")
class DiffuseWithPointLightMaterial(nn.Module):
    """Ambient + Lambert shading of the albedo features under per-view point lights."""

    requires_normal = True

    @dataclass
    class Config:
        """Light colours and the shading augmentations of DreamFusion (threestudio's names and defaults)."""

        ambient_light_color: tuple[float, float, float] = (0.1, 0.1, 0.1)
        """Ambient light colour."""
        diffuse_light_color: tuple[float, float, float] = (0.9, 0.9, 0.9)
        """Point-light colour."""
        ambient_only_steps: int = 1000
        """Until this step only the albedo is rendered (threestudio's ambient-only warm-up)."""
        diffuse_prob: float = 0.75
        """In training, probability of a shaded batch (else plain albedo)."""
        textureless_prob: float = 0.5
        """In training, probability that a shaded batch is textureless (white albedo)."""
        soft_shading: bool = False
        """In training, draw the diffuse share d ~ U(0, 1) per batch, ambient = 1 − d (Magic3D-style)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("ambient_light_color", torch.tensor(cfg.ambient_light_color, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("diffuse_light_color", torch.tensor(cfg.diffuse_light_color, dtype=torch.float32),
                             persistent=False)
        self.ambient_only = cfg.ambient_only_steps > 0

    def _light_colors(self, ambient_ratio: float | None) -> tuple[Tensor, Tensor]:
        """(ambient, diffuse) colours: fixed, from `ambient_ratio`, or soft-shading random in training."""
        if ambient_ratio is not None:
            return torch.full_like(self.ambient_light_color, ambient_ratio), \
                torch.full_like(self.diffuse_light_color, 1.0 - ambient_ratio)
        if self.training and self.cfg.soft_shading:
            diffuse = torch.rand(()).item()
            return torch.full_like(self.ambient_light_color, 1.0 - diffuse), \
                torch.full_like(self.diffuse_light_color, diffuse)
        return self.ambient_light_color, self.diffuse_light_color

    def pick_shading(self) -> str:
        """threestudio's per-batch choice of `albedo`, `textureless` or `diffuse`."""
        if self.ambient_only:
            return "albedo"
        if not self.training:
            return "diffuse"
        if torch.rand(()).item() > self.cfg.diffuse_prob:
            return "albedo"
        return "textureless" if torch.rand(()).item() < self.cfg.textureless_prob else "diffuse"

    def forward(self, features: Tensor, positions: Tensor, shading_normal: Tensor, light_positions: Tensor,
                viewdirs: Tensor | None = None, ambient_ratio: float | None = None, shading: str | None = None,
                **kwargs: object) -> Tensor:
        """Colours [..., 3] of samples with albedo `features` [..., 3], world `positions`, unit `shading_normal`
        and `light_positions` [..., 3]; `shading` forces one of albedo|textureless|diffuse."""
        shading = shading or self.pick_shading()
        if shading not in SHADINGS:
            raise ValueError(f"shading must be one of {SHADINGS}, got {shading!r}")
        albedo = features[..., :3].clamp(0.0, 1.0)
        if shading == "albedo":
            return albedo
        ambient, diffuse = self._light_colors(ambient_ratio)
        light_dirs = F.normalize(light_positions - positions, dim=-1)
        cos = (shading_normal * light_dirs).sum(-1, keepdim=True).clamp(min=0.0)
        textureless = ambient + diffuse * cos
        return textureless.expand_as(albedo) if shading == "textureless" else albedo * textureless

    def update_step(self, global_step: int) -> None:
        """Leave the ambient-only warm-up at `ambient_only_steps`."""
        self.ambient_only = global_step < self.cfg.ambient_only_steps
