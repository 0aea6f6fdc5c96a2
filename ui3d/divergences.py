"""The f family of Uni-Instruct: D_f(q||p) = ∫ p f(q/p), with r = q/p (teacher over student).

Each divergence stores f and its coefficients in closed form (DESIGN §3.1):

    h(r)  = r² f''(r)                          the f-distill weight
    c1(r) = r³ f'''(r)            = r h' − 2h   Uni-Instruct's C1 (Eq. 3.4)
    c2(r) = 2r²f'' + 4r³f''' + r⁴f'''' = r² h''  Uni-Instruct's C2 (Eq. 3.4)

The paper's Table 5 gives C1 = −1 for rkl and −r−1 for jkl; the derivation gives −2 and −r−2 (the table's values
are −r²f''). The derivation is the default; `get(name, table5=True)` returns the paper's values, only to reproduce it.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

Fn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Divergence:
    """One f-divergence: f and the coefficients the losses need, as tensor functions of r > 0."""

    name: str
    f: Fn
    h: Fn
    c1: Fn
    c2: Fn
    mode_seeking: bool
    """lim f(r)/r < ∞ as r → ∞ (the paper's Table 5 column)."""
    description: str = ""

    def h_prime_r(self, r: Tensor) -> Tensor:
        """r h'(r) = c1 + 2h."""
        return self.c1(r) + 2 * self.h(r)


def _log1p_over2(r: Tensor) -> Tensor:  # log((r + 1) / 2), accurate near r = 1
    return torch.log1p((r - 1) / 2)


def _sqrt(r: Tensor) -> Tensor:  # √r with a finite gradient where r underflowed to 0
    return torch.sqrt(r.clamp_min(torch.finfo(r.dtype).tiny))


_FAMILY = [
    Divergence(
        "fkl", lambda r: r * torch.log(r), lambda r: r, lambda r: -r, lambda r: torch.zeros_like(r),
        False, "forward KL, KL(q||p): mode covering",
    ),
    Divergence(
        "rkl", lambda r: -torch.log(r), lambda r: torch.ones_like(r), lambda r: torch.full_like(r, -2.0),
        lambda r: torch.zeros_like(r), True, "reverse KL, KL(p||q): Diff-Instruct / DMD / SiD",
    ),
    Divergence(
        "jkl", lambda r: (r - 1) * torch.log(r), lambda r: r + 1, lambda r: -r - 2, lambda r: torch.zeros_like(r),
        False, "Jeffreys, fkl + rkl",
    ),
    Divergence(
        "chi2", lambda r: (r - 1) ** 2, lambda r: 2 * r**2, lambda r: torch.zeros_like(r), lambda r: 4 * r**2,
        False, "Pearson chi-squared",
    ),
    Divergence(
        "js",
        lambda r: r * torch.log(r) - (r + 1) * _log1p_over2(r),
        lambda r: r / (r + 1),
        lambda r: -r * (2 * r + 1) / (r + 1) ** 2,
        lambda r: -2 * r**2 / (r + 1) ** 3,
        True, "Jensen-Shannon (times 2)",
    ),
    Divergence(
        "hellinger", lambda r: (_sqrt(r) - 1) ** 2, lambda r: 0.5 * _sqrt(r),
        lambda r: -0.75 * _sqrt(r), lambda r: -0.125 * _sqrt(r),
        True, "squared Hellinger",
    ),
    Divergence(
        "softrkl",
        lambda r: (r + 1) * torch.log((r + 1) / (2 * r)),
        lambda r: 1 / (r + 1),
        lambda r: -(3 * r + 2) / (r + 1) ** 2,
        lambda r: 2 * r**2 / (r + 1) ** 3,
        True, "softened reverse KL (f-distill)",
    ),
]
_BY_NAME = {d.name: d for d in _FAMILY}
_TABLE5_C1: dict[str, Fn] = {"rkl": lambda r: torch.full_like(r, -1.0), "jkl": lambda r: -r - 1}
"""The two entries where the paper's Table 5 differs from the derivation (its values equal −r²f'')."""


def names() -> list[str]:
    """Every divergence name, in table order."""
    return [d.name for d in _FAMILY]


def get(name: str, table5: bool = False) -> Divergence:
    """The divergence `name`. `table5=True` swaps in the paper's Table 5 C1 values (known wrong for rkl, jkl)."""
    if name not in _BY_NAME:
        close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise KeyError(f"unknown divergence '{name}'.{hint} Known: {', '.join(names())}")
    div = _BY_NAME[name]
    if table5 and name in _TABLE5_C1:
        div = dataclasses.replace(div, name=f"{name}-table5", c1=_TABLE5_C1[name])
    return div
