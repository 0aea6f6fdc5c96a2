"""Regularisers of volume renders, as threestudio's DreamFusion/Magic3D systems compute them
(`loss_sparsity`, `loss_opaque`, `loss_orient`); each returns a scalar."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sparsity(opacity: Tensor, eps: float = 0.01) -> Tensor:
    """Mean of √(o² + eps): a smooth L1 pull of the opacity towards 0 (threestudio's `loss_sparsity`)."""
    return (opacity**2 + eps).sqrt().mean()


def opacity_entropy(opacity: Tensor, clamp: float = 1e-3) -> Tensor:
    """Binary entropy −o log o − (1 − o) log(1 − o) of the clamped opacity, averaged: pushes every pixel to be
    fully empty or fully opaque (threestudio's `loss_opaque`, a binary cross-entropy of o with itself)."""
    o = opacity.clamp(clamp, 1.0 - clamp)
    return F.binary_cross_entropy(o, o)


def orientation(weights: Tensor, normals: Tensor, rays_d: Tensor, opacity: Tensor | None = None,
                detach_weights: bool = True) -> Tensor:
    """Ref-NeRF's orientation loss Σ_i w_i · max(0, n_i·d)²: penalises visible normals facing away from the
    camera (d points from the camera into the scene). weights [..., 1], normals [..., 3] per sample; rays_d per
    sample [..., 3] or per ray (one dim fewer, broadcast over samples). The total is divided by the number of
    rays with opacity > 0 when `opacity` is given (threestudio's `loss_orient`), else by the number of rays
    (batched [..., N, 1] weights). threestudio stops the gradient through the weights (`detach_weights`)."""
    if rays_d.dim() == normals.dim() - 1:
        rays_d = rays_d.unsqueeze(-2)
    w = weights.detach() if detach_weights else weights
    total = (w[..., 0] * (normals * rays_d).sum(-1).clamp(min=0.0) ** 2).sum()
    count = (opacity > 0).sum() if opacity is not None else torch.tensor(weights.shape[:-2].numel())
    return total / count.clamp(min=1)


def mesh_topology(faces: Tensor) -> tuple[Tensor, Tensor]:
    """Unique undirected edges [E, 2] of a triangle mesh and the pairs of faces [P, 2] that share an edge
    (manifold edges only; boundary and non-manifold edges have no pair)."""
    corners = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    face_of = torch.arange(len(faces), device=faces.device).repeat(3)
    edges, inverse, counts = torch.unique(corners, dim=0, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)
    start = (torch.cumsum(counts, 0) - counts)[counts == 2]
    return edges, torch.stack([face_of[order[start]], face_of[order[start + 1]]], dim=1)


def normal_consistency(vertices: Tensor, faces: Tensor, face_pairs: Tensor) -> Tensor:
    """Mean 1 − cos θ between the normals of faces sharing an edge (pytorch3d's `mesh_normal_consistency`,
    threestudio's `loss_normal_consistency` in Magic3D/ProlificDreamer stage 2)."""
    from ui3d.renderers.shading import face_normals

    n = face_normals(vertices, faces)
    return (1.0 - (n[face_pairs[:, 0]] * n[face_pairs[:, 1]]).sum(-1)).mean()


def laplacian_smoothness(values: Tensor, edges: Tensor) -> Tensor:
    """Mean ‖x_i − mean_{j ∈ N(i)} x_j‖² of per-vertex values [V, C] under the uniform Laplacian of the edge
    graph (threestudio's `laplacian_smooth_loss`; on vertex offsets it smooths the displacement only)."""
    both = torch.cat([edges, edges.flip(1)])
    total = torch.zeros_like(values).index_add(0, both[:, 0], values[both[:, 1]])
    degree = torch.zeros(len(values), 1, dtype=values.dtype, device=values.device)
    degree = degree.index_add(0, both[:, 0], torch.ones(len(both), 1, dtype=values.dtype, device=values.device))
    return ((values - total / degree.clamp(min=1)) ** 2).sum(-1).mean()


def normal_offset(offsets: Tensor, normals: Tensor, outward_only: bool = False) -> Tensor:
    """Mean (n_i · o_i)² of the vertex offsets [V, 3] along the starting mesh's outward vertex normals [V, 3]
    (`shading.outward_vertex_normals`): holds the surface where the mesh started (the NeRF's marching-cubes
    surface, hence its silhouettes and depth from every view) while leaving vertices free to slide along it.
    `outward_only` penalises growth only (max(0, n · o)²), leaving the surface free to be carved in."""
    along = (offsets * normals).sum(-1)
    if outward_only:
        along = along.clamp(min=0.0)
    return (along**2).mean()
