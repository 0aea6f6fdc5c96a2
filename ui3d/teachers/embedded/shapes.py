"""Procedural 3D objects with known geometry for the embedded teacher (DESIGN.md §6).

Every object is a small watertight triangle mesh (a few thousand faces) built in memory with trimesh:
surfaces of revolution from a 2-D profile (vase, bowl, cup, bottle, cone, ball, goblet), a revolved cup plus a
swept tube handle (mug), a subdivided box and a torus (donut).

Conventions follow threestudio: **z is up**, the object is centred at the origin (bounding-box centre) and scaled
so that every vertex lies inside the sphere of radius `RADIUS` = 0.5. The object's "front" faces +x (azimuth 0),
so a mug's handle (+y) is seen in profile from the front. Colours and surface patterns live in `patterns.py`.
"""

from __future__ import annotations

import functools

import numpy as np
import trimesh

RADIUS = 0.5
"""Every normalised object fits in the origin-centred sphere of this radius."""

SEGMENTS = 40
"""Angular segments of a surface of revolution."""

# Profiles are control polygons in (r, z), from the axis at the bottom to the axis at the top (solids) or from
# the axis at the bottom up the outside to the rim (vessels; the inside is an inward offset). They are smoothed
# with Chaikin corner cutting, so corners come out slightly rounded.
_SOLIDS: dict[str, list[list[tuple[float, float]]]] = {
    "bottle": [
        [(0, 0), (.2, 0), (.2, .55), (.16, .68), (.07, .78), (.065, .98), (.075, 1.0), (0, 1.0)],  # wine
        [(0, 0), (.24, 0), (.25, .45), (.2, .6), (.11, .68), (.1, .78), (0, .78)],  # milk
        [(0, 0), (.15, 0), (.27, .15), (.27, .35), (.12, .5), (.05, .58), (.05, .85), (0, .85)],  # flask
    ],
    "cone": [
        [(0, 0), (.35, 0), (.35, .01), (0, .9)],
        [(0, 0), (.45, 0), (.45, .01), (0, .55)],
        [(0, 0), (.25, 0), (.25, .01), (0, 1.0)],
    ],
}
_VESSELS: dict[str, list[tuple[list[tuple[float, float]], float, float]]] = {  # (outside, wall, inner floor)
    "vase": [
        ([(0, 0), (.18, 0), (.25, .12), (.33, .45), (.15, .75), (.13, .9), (.18, 1.0)], .03, .03),
        ([(0, 0), (.14, 0), (.2, .5), (.1, .85), (.14, 1.15)], .03, .03),
        ([(0, 0), (.15, 0), (.36, .22), (.38, .45), (.2, .72), (.11, .82), (.15, .9)], .03, .03),
    ],
    "bowl": [
        ([(0, 0), (.2, 0), (.22, .04), (.4, .12), (.5, .32)], .03, .03),
        ([(0, 0), (.16, 0), (.18, .04), (.36, .14), (.42, .4)], .03, .03),
        ([(0, 0), (.22, 0), (.24, .03), (.45, .1), (.55, .22)], .03, .03),
    ],
    "cup": [
        ([(0, 0), (.18, 0), (.28, .62)], .025, .025),
        ([(0, 0), (.2, 0), (.22, .75)], .025, .025),
        ([(0, 0), (.16, 0), (.19, .3), (.32, .6)], .025, .025),
    ],
    "mug": [
        ([(0, 0), (.25, 0), (.25, .55)], .04, .04),
        ([(0, 0), (.2, 0), (.2, .7)], .04, .04),
        ([(0, 0), (.3, 0), (.3, .45)], .04, .04),
    ],
    "goblet": [
        ([(0, 0), (.25, 0), (.25, .03), (.04, .06), (.04, .4), (.14, .46), (.25, .7), (.26, .9)], .02, .48),
        ([(0, 0), (.2, 0), (.2, .03), (.035, .06), (.035, .25), (.2, .35), (.2, .65)], .02, .3),
        ([(0, 0), (.22, 0), (.22, .03), (.03, .06), (.03, .5), (.3, .6), (.32, .7)], .02, .54),
    ],
}
_BOXES = [(1.0, 1.0, 1.0), (.6, .6, 1.1), (1.0, .7, .45)]
_DONUTS = [(.35, .15), (.35, .1), (.3, .2)]  # (major, minor) radius
_BALLS = [1.0, .8, 1.2]  # z stretch of a unit sphere

CATEGORIES: tuple[str, ...] = (
    "vase", "bowl", "mug", "bottle", "cup", "goblet", "cone", "ball", "box", "donut")
"""Object categories, each with a distinct silhouette."""


def num_variants(category: str) -> int:
    """Number of shape variants of `category`."""
    table = {**_SOLIDS, **_VESSELS, "box": _BOXES, "donut": _DONUTS, "ball": _BALLS}
    if category not in table:
        raise KeyError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    return len(table[category])


def chaikin(points: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting of an open polyline [K, 2]; the two end points are kept."""
    for _ in range(iterations):
        p, q = points[:-1], points[1:]
        cut = np.stack([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], axis=1).reshape(-1, 2)
        points = np.concatenate([points[:1], cut[1:-1], points[-1:]])
    return points


def vessel_profile(outer: list[tuple[float, float]], thickness: float, floor: float) -> np.ndarray:
    """Closed-wall profile: up the outside of `outer`, over the rim, down the inside (the outside offset inwards
    by `thickness`, mitred at corners) to a flat inner floor at height `floor`."""
    p = np.asarray(outer, dtype=np.float64)
    d = np.diff(p, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)  # left = inside
    n_a, n_b = np.concatenate([n[:1], n]), np.concatenate([n, n[-1:]])
    inner = (p + thickness * (n_a + n_b) / (1 + (n_a * n_b).sum(1, keepdims=True)))[::-1]
    below = np.flatnonzero(inner[:, 1] <= floor)[0]
    a, b = inner[below - 1], inner[below]
    crossing = a + (b - a) * (a[1] - floor) / (a[1] - b[1])
    return np.concatenate([p, inner[:below], [crossing, (0.0, floor)]])


def revolve(profile: np.ndarray, segments: int = SEGMENTS) -> trimesh.Trimesh:
    """Surface of revolution about z of a profile [K, 2] of (r, z) whose first and last points lie on the axis."""
    ring = profile[1:-1]
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    rings = np.stack([ring[:, :1] * np.cos(phi), ring[:, :1] * np.sin(phi),
                      np.repeat(ring[:, 1:], segments, axis=1)], axis=-1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 0, profile[0, 1]]], rings, [[0, 0, profile[-1, 1]]]])
    j, k = np.arange(segments), (np.arange(segments) + 1) % segments
    faces = [np.stack([np.zeros(segments, int), 1 + k, 1 + j], axis=1)]
    for i in range(len(ring) - 1):
        a, b = 1 + i * segments, 1 + (i + 1) * segments
        faces += [np.stack([a + j, a + k, b + k], axis=1), np.stack([a + j, b + k, b + j], axis=1)]
    last, top = 1 + (len(ring) - 1) * segments, len(vertices) - 1
    faces.append(np.stack([last + j, last + k, np.full(segments, top)], axis=1))
    return _outward(trimesh.Trimesh(vertices, np.concatenate(faces), process=False))


def tube(path: np.ndarray, radius: float, sections: int = 12) -> trimesh.Trimesh:
    """Capped tube of `radius` swept along a polyline `path` [K, 3] lying in the plane x = 0."""
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    binormal = np.array([1.0, 0.0, 0.0])
    normal = np.cross(tangent, binormal)
    theta = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
    circle = np.cos(theta)[:, None, None] * binormal + np.sin(theta)[:, None, None] * normal[None]
    rings = (path[None] + radius * circle).transpose(1, 0, 2).reshape(-1, 3)
    vertices = np.concatenate([rings, path[[0, -1]]])
    j, k = np.arange(sections), (np.arange(sections) + 1) % sections
    faces = []
    for i in range(len(path) - 1):
        a, b = i * sections, (i + 1) * sections
        faces += [np.stack([a + j, a + k, b + k], axis=1), np.stack([a + j, b + k, b + j], axis=1)]
    start, end, last = len(rings), len(rings) + 1, (len(path) - 1) * sections
    faces += [np.stack([np.full(sections, start), k, j], axis=1),
              np.stack([np.full(sections, end), last + j, last + k], axis=1)]
    return _outward(trimesh.Trimesh(vertices, np.concatenate(faces), process=False))


def _outward(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Flip the winding if the mesh has negative signed volume (normals pointing in)."""
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _mug_handle(outer: list[tuple[float, float]], thickness: float) -> trimesh.Trimesh:
    """A D-shaped handle on the +y side, its ends buried in the mug wall."""
    r, h = outer[-1]
    lo, hi, out = 0.2 * h, 0.8 * h, r + 0.35 * (0.6 * h)
    control = np.array([[r - thickness / 2, hi], [out, hi], [out, lo], [r - thickness / 2, lo]])
    yz = chaikin(control, 3)
    path = np.concatenate([np.zeros((len(yz), 1)), yz], axis=1)
    return tube(path, radius=0.045 * h)


def _raw_mesh(category: str, variant: int) -> trimesh.Trimesh:
    """Un-normalised mesh of one category variant."""
    if category in _SOLIDS:
        return revolve(chaikin(np.asarray(_SOLIDS[category][variant], float)))
    if category in _VESSELS:
        outer, thickness, floor = _VESSELS[category][variant]
        body = revolve(chaikin(vessel_profile(outer, thickness, floor)))
        if category == "mug":
            body = trimesh.util.concatenate([body, _mug_handle(outer, thickness)])
        return body
    if category == "ball":
        mesh = trimesh.creation.uv_sphere(radius=1.0, count=[24, SEGMENTS])
        mesh.apply_scale([1.0, 1.0, _BALLS[variant]])
        return mesh
    if category == "box":
        mesh = trimesh.creation.box(extents=_BOXES[variant])
        vertices, faces = trimesh.remesh.subdivide(mesh.vertices, mesh.faces)
        return trimesh.Trimesh(*trimesh.remesh.subdivide(vertices, faces), process=False)
    if category == "donut":
        major, minor = _DONUTS[variant]
        return trimesh.creation.torus(major, minor, major_sections=SEGMENTS, minor_sections=20)
    raise KeyError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")


def normalize(mesh: trimesh.Trimesh, radius: float = RADIUS) -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale so that max |v| = `radius`."""
    mesh = mesh.copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(radius / np.linalg.norm(mesh.vertices, axis=1).max())
    return mesh


@functools.lru_cache(maxsize=None)
def _cached_mesh(category: str, variant: int) -> trimesh.Trimesh:
    return normalize(_raw_mesh(category, variant))


def build_mesh(category: str, variant: int = 0) -> trimesh.Trimesh:
    """Normalised mesh (z-up, centred, inside the sphere of radius `RADIUS`) of a category variant; a fresh copy."""
    if not 0 <= variant < num_variants(category):
        raise IndexError(f"{category!r} has {num_variants(category)} variants, got variant={variant}")
    return _cached_mesh(category, variant).copy()
