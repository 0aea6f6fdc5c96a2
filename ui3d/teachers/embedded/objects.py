"""Object specifications (category, variant, colour, pattern), their prompts and the prompt vocabulary.

Prompts follow one template, "a|an [colour] [pattern] <category>", e.g. "a red striped vase", "an orange dotted
mug"; the plain pattern reads "a plain red vase". Either attribute word may be dropped ("a vase", "a red vase",
"a striped vase"): such a prompt means any value of the dropped attribute. View-dependent prompts append
DreamFusion's suffix (", side view"; see `ui3d.data.cameras.view_prompt`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from ui3d.data.cameras import DIRECTIONS
from ui3d.renderers.shading import vertex_normals
from ui3d.teachers.embedded.patterns import COLORS, PATTERNS, PatternFrame, albedo, frame_for
from ui3d.teachers.embedded.shapes import CATEGORIES, build_mesh, num_variants


@dataclass(frozen=True)
class ObjectSpec:
    """One procedural object."""

    category: str
    """One of `shapes.CATEGORIES`."""
    variant: int
    """Shape variant, 0 ≤ variant < `shapes.num_variants(category)`."""
    color: str
    """One of `patterns.COLORS`."""
    pattern: str
    """One of `patterns.PATTERNS`."""


def all_specs() -> list[ObjectSpec]:
    """Every (category, variant, colour, pattern) combination, in a fixed order."""
    return [ObjectSpec(c, v, col, p) for c in CATEGORIES for v in range(num_variants(c))
            for col in COLORS for p in PATTERNS]


def sample_spec(generator: torch.Generator) -> ObjectSpec:
    """A uniformly random category, then variant, colour and pattern."""
    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator).item())
    category = CATEGORIES[pick(len(CATEGORIES))]
    return ObjectSpec(category, pick(num_variants(category)), list(COLORS)[pick(len(COLORS))],
                      PATTERNS[pick(len(PATTERNS))])


def object_prompt(spec: ObjectSpec, with_color: bool = True, with_pattern: bool = True) -> str:
    """"a red striped vase"; `with_color` / `with_pattern` False drop that word."""
    words = [spec.color] if with_color else []
    if with_pattern and spec.pattern == "plain":
        words.insert(0, "plain")
    elif with_pattern:
        words.append(spec.pattern)
    words.append(spec.category)
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article, *words])


NORMAL_MAP_STYLE = "a normal map of"
"""The style phrase of the teacher's normal-map renders: "a normal map of a vase, side view"."""


def normal_map_prompt(spec: ObjectSpec) -> str:
    """"a normal map of a vase": the category alone (a normal map shows neither colour nor pattern)."""
    return f"{NORMAL_MAP_STYLE} {object_prompt(spec, with_color=False, with_pattern=False)}"


def is_normal_map_prompt(prompt: str) -> bool:
    """Whether `prompt` asks for a normal map ("a normal map of a vase, side view")."""
    return prompt.lower().startswith(NORMAL_MAP_STYLE + " ")


def vocabulary() -> list[str]:
    """Every token a prompt can contain (words, the normal-map style's and the comma of the view suffix), sorted."""
    words = {"a", "an", ",", "view", *NORMAL_MAP_STYLE.split(), *CATEGORIES, *COLORS, *PATTERNS, *DIRECTIONS}
    return sorted(words)


def surface_frame(spec: ObjectSpec) -> PatternFrame:
    """The pattern frame of the object's mesh."""
    return _frame(spec.category, spec.variant)


@functools.lru_cache(maxsize=None)
def _frame(category: str, variant: int) -> PatternFrame:
    mesh = build_mesh(category, variant)
    return frame_for(category, torch.as_tensor(mesh.vertices, dtype=torch.float32))


def textured_mesh(spec: ObjectSpec) -> trimesh.Trimesh:
    """The object's mesh with its colour pattern baked into vertex colours (for export: `mesh.export(path)`;
    renders evaluate the pattern per pixel instead, which is sharper)."""
    mesh = build_mesh(spec.category, spec.variant)
    v = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    n = vertex_normals(v, torch.as_tensor(mesh.faces))
    rgb = albedo(v, n, spec.color, spec.pattern, surface_frame(spec))
    alpha = np.full((len(v), 1), 255, dtype=np.uint8)
    mesh.visual.vertex_colors = np.concatenate([(rgb.numpy() * 255).round().astype(np.uint8), alpha], axis=1)
    return mesh
