"""The unlit material: colour = the geometry's features (threestudio's `no-material`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ui3d import register


@register("no-material")
class NoMaterial(nn.Module):
    """rgb = features[..., :3] (already in [0, 1]: the geometry applies the sigmoid)."""

    requires_normal = False

    @dataclass
    class Config:
        """No options; kept so that every part is configured alike."""

    def __init__(self, cfg: Config | None = None):
        super().__init__()
        self.cfg = cfg or self.Config()

    def forward(self, features: Tensor, positions: Tensor | None = None, shading_normal: Tensor | None = None,
                light_positions: Tensor | None = None, viewdirs: Tensor | None = None, **kwargs: object) -> Tensor:
        """Colours [..., 3] of the samples."""
        return features[..., :3]

    def update_step(self, global_step: int) -> None:
        """Nothing is scheduled."""
