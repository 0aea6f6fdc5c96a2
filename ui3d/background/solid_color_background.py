"""A solid background colour, fixed or learned (threestudio's `solid-color-background`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ui3d import register


@register("solid-color-background")
class SolidColorBackground(nn.Module):
    """The same colour along every ray; optionally a learned parameter, optionally a random colour per batch in
    training (threestudio's `random_aug`)."""

    @dataclass
    class Config:
        """Colour and augmentation (threestudio's names and defaults)."""

        color: tuple[float, float, float] = (1.0, 1.0, 1.0)
        """RGB in [0, 1]."""
        learned: bool = False
        """Make the colour a trainable parameter."""
        random_aug: bool = False
        """In training, replace the colour by a random one with probability `random_aug_prob`."""
        random_aug_prob: float = 0.5
        """Probability of the random colour."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        color = torch.tensor(cfg.color, dtype=torch.float32)
        if cfg.learned:
            self.color = nn.Parameter(color)
        else:
            self.register_buffer("color", color)

    def forward(self, dirs: Tensor) -> Tensor:
        """Colours [B, H, W, 3] for view directions [B, H, W, 3]."""
        color = self.color.to(dirs.dtype).expand(*dirs.shape[:-1], 3)
        if self.training and self.cfg.random_aug and torch.rand(()).item() < self.cfg.random_aug_prob:
            color = color * 0.0 + torch.rand(3, dtype=dirs.dtype, device=dirs.device)
        return color

    def update_step(self, global_step: int) -> None:
        """Nothing is scheduled."""
