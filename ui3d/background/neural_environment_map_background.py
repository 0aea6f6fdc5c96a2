"""A learned environment map: a small MLP of the view direction (threestudio's
`neural-environment-map-background`: spherical-harmonics encoding of degree 3, a 2×16 MLP, sigmoid)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ui3d import register


def spherical_harmonics(dirs: Tensor) -> Tensor:
    """Real spherical harmonics of degree ≤ 3 (16 values) of unit directions [N, 3] (tiny-cuda-nn's
    `SphericalHarmonics` encoding with degree 4, without its [0, 1] input shift)."""
    x, y, z = dirs.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x,
        1.0925484305920792 * x * y, -1.0925484305920792 * y * z, 0.94617469575755997 * zz - 0.31539156525252005,
        -1.0925484305920792 * x * z, 0.54627421529603959 * (xx - yy),
        0.59004358992664352 * y * (-3.0 * xx + yy), 2.8906114426405538 * x * y * z,
        0.45704579946446572 * y * (1.0 - 5.0 * zz), 0.3731763325901154 * z * (5.0 * zz - 3.0),
        0.45704579946446572 * x * (1.0 - 5.0 * zz), 1.4453057213202769 * z * (xx - yy),
        0.59004358992664352 * x * (-xx + 3.0 * yy),
    ], dim=-1)


ACTIVATIONS = {"sigmoid": torch.sigmoid, "none": lambda x: x}


@register("neural-environment-map-background")
class NeuralEnvironmentMapBackground(nn.Module):
    """rgb = activation(MLP(SH(d))) for unit view directions d."""

    @dataclass
    class Config:
        """Network and augmentation (threestudio's names and defaults)."""

        color_activation: str = "sigmoid"
        """`sigmoid` or `none`."""
        mlp_hidden: int = 16
        """Width of the MLP."""
        mlp_layers: int = 2
        """Hidden layers of the MLP."""
        random_aug: bool = False
        """In training, replace the map by random solid colours with probability `random_aug_prob`."""
        random_aug_prob: float = 0.5
        """Probability of the random colours."""
        share_aug_bg: bool = False
        """One random colour for the whole batch (else one per image)."""
        eval_color: tuple[float, float, float] | None = None
        """A solid colour used outside training instead of the map (e.g. white validation renders)."""

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.color_activation not in ACTIVATIONS:
            raise ValueError(f"color_activation must be one of {sorted(ACTIVATIONS)}")
        self.cfg = cfg
        layers: list[nn.Module] = []
        n_in = 16
        for _ in range(cfg.mlp_layers):
            layers += [nn.Linear(n_in, cfg.mlp_hidden), nn.ReLU(inplace=True)]
            n_in = cfg.mlp_hidden
        self.network = nn.Sequential(*layers, nn.Linear(n_in, 3))

    def forward(self, dirs: Tensor) -> Tensor:
        """Colours [B, H, W, 3] for view directions [B, H, W, 3]."""
        if not self.training and self.cfg.eval_color is not None:
            return dirs.new_tensor(self.cfg.eval_color).expand(*dirs.shape[:-1], 3)
        unit = torch.nn.functional.normalize(dirs.reshape(-1, 3), dim=-1)
        color = ACTIVATIONS[self.cfg.color_activation](self.network(spherical_harmonics(unit)))
        color = color.reshape(*dirs.shape[:-1], 3)
        if self.training and self.cfg.random_aug and torch.rand(()).item() < self.cfg.random_aug_prob:
            shape = (3,) if self.cfg.share_aug_bg else (dirs.shape[0],) + (1,) * (dirs.dim() - 2) + (3,)
            color = color * 0.0 + torch.rand(shape, dtype=dirs.dtype, device=dirs.device)
        return color

    def update_step(self, global_step: int) -> None:
        """Nothing is scheduled."""
