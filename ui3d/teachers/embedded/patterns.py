"""Colours and procedural surface patterns of the embedded teacher's objects (DESIGN.md §6).

A pattern is a function of the surface point (and its normal), evaluated per pixel from the rasterizer's
interpolated positions, so "a blue dotted mug" is crisp at any resolution. Points are mapped to 2-D pattern
coordinates (s, t) in cell units by a `PatternFrame` chosen per object:

- `revolve` (surfaces of revolution): s = φ·n/2π around the z axis (n an integer, so there is no seam), t = z/P;
- `box`: the two coordinates orthogonal to the dominant axis of the normal, divided by P (planar per face);
- `torus`: s around the z axis, t around the tube (angle ψ·m/2π), so stripes ring the tube.

The pattern then picks the base colour or a contrasting one: `striped` (bands of t), `dotted` (staggered dots of
radius 0.3 cells), `checkered` (alternating cells); `plain` is the base colour only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.1, 0.1),
    "orange": (0.96, 0.5, 0.08),
    "yellow": (0.96, 0.84, 0.12),
    "green": (0.12, 0.62, 0.2),
    "blue": (0.12, 0.28, 0.86),
    "purple": (0.52, 0.18, 0.72),
    "pink": (0.98, 0.55, 0.75),
    "brown": (0.48, 0.28, 0.12),
    "black": (0.1, 0.1, 0.1),
}
"""Base albedo (linear RGB in [0, 1]) of every colour word."""

PATTERNS: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")
"""Surface pattern words."""

PERIOD = 0.25
"""Pattern period P in object units (objects fit in a sphere of radius 0.5): one stripe pair, dot or 2 checks."""

_LIGHT, _DARK = (0.96, 0.96, 0.96), (0.12, 0.12, 0.12)


def contrast_color(color: str) -> tuple[float, float, float]:
    """The second colour of a pattern: near-white on dark base colours, near-black on light ones."""
    r, g, b = COLORS[color]
    return _DARK if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.6 else _LIGHT


@dataclass(frozen=True)
class PatternFrame:
    """How surface points map to pattern coordinates (see the module docstring)."""

    kind: str = "revolve"
    """`revolve`, `box` or `torus`."""
    n_around: int = 8
    """Cells around the z axis (even: checks and stripes close without a seam)."""
    n_tube: int = 4
    """Cells around a torus tube (even; `torus` only)."""
    ring_radius: float = 0.35
    """Radius of a torus's centre circle (`torus` only)."""
    period: float = PERIOD
    """Cell size P in object units."""


def frame_for(category: str, vertices: Tensor) -> PatternFrame:
    """Pattern frame of an object of `category` whose normalised mesh has `vertices` [V, 3]."""
    rho = vertices[:, :2].norm(dim=-1)
    n_around = max(4, 2 * round(math.pi * rho.median().item() / PERIOD))
    if category == "box":
        return PatternFrame("box")
    if category == "donut":
        minor = vertices[:, 2].abs().max().item()
        ring = (rho.max().item() + rho.min().item()) / 2
        return PatternFrame("torus", n_around, max(4, 2 * round(math.pi * minor / PERIOD)), ring)
    return PatternFrame("revolve", n_around)


def pattern_coords(points: Tensor, normals: Tensor, frame: PatternFrame) -> tuple[Tensor, Tensor]:
    """Pattern coordinates (s, t) in cell units of surface points [..., 3] with normals [..., 3]."""
    x, y, z = points.unbind(-1)
    phi = torch.atan2(y, x)
    if frame.kind == "box":
        axis = normals.abs().argmax(dim=-1)
        s = torch.where(axis == 0, y, x)
        t = torch.where(axis == 2, y, z)
        return s / frame.period, t / frame.period
    s = phi * frame.n_around / (2 * math.pi)
    if frame.kind == "torus":
        psi = torch.atan2(z, torch.hypot(x, y) - frame.ring_radius)
        return s, psi * frame.n_tube / (2 * math.pi)
    return s, z / frame.period


def pattern_mask(s: Tensor, t: Tensor, pattern: str) -> Tensor:
    """Boolean mask of where `pattern` shows its second colour, from pattern coordinates (s, t)."""
    if pattern == "plain":
        return torch.zeros_like(s, dtype=torch.bool)
    if pattern == "striped":
        return torch.frac(torch.frac(t) + 1.0) < 0.5
    if pattern == "dotted":
        row = torch.floor(t + 0.5)
        s = s + 0.5 * torch.remainder(row, 2)
        return (s - torch.round(s)) ** 2 + (t - row) ** 2 < 0.3**2
    if pattern == "checkered":
        return torch.remainder(torch.floor(s) + torch.floor(t), 2) == 0
    raise KeyError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def albedo(points: Tensor, normals: Tensor, color: str, pattern: str, frame: PatternFrame) -> Tensor:
    """Albedo [..., 3] of `color` with `pattern` at surface points [..., 3] with normals [..., 3]."""
    if color not in COLORS:
        raise KeyError(f"unknown colour {color!r}; known: {', '.join(COLORS)}")
    base = points.new_tensor(COLORS[color])
    second = points.new_tensor(contrast_color(color))
    mask = pattern_mask(*pattern_coords(points, normals, frame), pattern)
    return torch.where(mask[..., None], second, base)
