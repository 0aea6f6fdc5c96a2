"""Stages 2 and 3: an explicit triangle mesh with learnable per-vertex offsets and a texture field queried at
surface points (direct vertex optimisation, the CPU-robust alternative to DMTet's tetrahedral SDF of Magic3D /
ProlificDreamer stage 2; threestudio's `tetrahedra-sdf-grid` plays this role there).

The mesh comes from the stage-1 NeRF (`initialize_from` an `implicit-volume`: density grid → marching cubes at
the automatic iso-level → largest component → decimation, `ui3d.export.isosurface`) or from an earlier mesh
stage (copied, threestudio's `geometry_convert_from`). Vertices are `base_vertices + vertex_offsets`; only the
offsets train, and `fix_geometry: true` freezes them (stage 3, texture only). The texture field is an encoding
(`ui3d.geometry.encodings`) + a small MLP → albedo in [0, 1], laid out exactly like the NeRF's feature branch by
the same `EncodingConfig` keys (which a converting stage inherits), so that it is copied from the NeRF when the two
configs agree (else fitted to the NeRF's albedo on the surface).

A checkpoint stores the mesh in resizable buffers: loading one replaces the mesh first, so a geometry built
fresh from the config (an icosphere) loads any stage checkpoint, as Lightning's resume needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import trimesh
from torch import Tensor, nn

from ui3d import register
from ui3d.geometry.encodings import EncodingConfig, encoding_from, mlp, same_layout
from ui3d.renderers.regularizers import mesh_topology
from ui3d.renderers.shading import outward_vertex_normals


@register("mesh-geometry")
class MeshGeometry(nn.Module):
    """A triangle mesh (vertices = base + offsets, faces) and its albedo field a(x) ∈ [0, 1]³."""

    @dataclass
    class Config(EncodingConfig):
        """Conversion from the NeRF, what trains, and the texture field: `EncodingConfig`'s box, encoding and MLP
        fields, the NeRF's own (a stage that converts a geometry inherits them: `ui3d.config.stage_block`)."""

        isosurface_resolution: int = 64
        """Density-grid side for marching cubes when converting from a NeRF."""
        isosurface_level: Optional[float] = None
        """Density iso-level; None picks it automatically: the level whose silhouettes match the NeRF's
        opacity-½ silhouettes (`ui3d.export.isosurface.auto_iso_level`)."""
        max_faces: int = 8000
        """Face budget of the converted mesh (quadric decimation; ≤ ~14k keeps xatlas under 1 s on CPU)."""
        fix_geometry: bool = False
        """Freeze the vertices (stage 3: texture only)."""
        fix_texture: bool = False
        """Freeze the albedo field (stage 2: only the shape answers the guidance; the colours stay stage 1's)."""
        sphere_radius: Optional[float] = None
        """Vertices stay inside this origin-centred sphere (a vertex outside is projected radially onto it), the
        bound the NeRF's density had (`implicit-volume`'s `sphere_radius`); null: no bound."""
        initial_radius: float = 0.35
        """Radius of the icosphere a geometry starts from before any conversion."""
        texture_fit_steps: int = 200
        """Adam steps fitting the texture field to the NeRF's albedo when it cannot be copied."""

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.sphere_radius is not None and not cfg.sphere_radius > 0:
            raise ValueError("geometry.sphere_radius must be positive (or null: no bound)")
        self.cfg = cfg
        self.encoding = encoding_from(cfg)
        self.feature_network = mlp(self.encoding.n_output_dims, cfg.mlp_hidden, cfg.mlp_layers, 3)
        if cfg.fix_texture:
            self.encoding.requires_grad_(False)
            self.feature_network.requires_grad_(False)
        sphere = trimesh.creation.icosphere(subdivisions=3, radius=cfg.initial_radius)
        self.set_mesh(torch.tensor(sphere.vertices, dtype=torch.float32), torch.tensor(sphere.faces))

    # -- the mesh ------------------------------------------------------------------------------------------
    def set_mesh(self, vertices: Tensor, faces: Tensor) -> None:
        """Replace the mesh (offsets reset to zero; a new offsets parameter, so build optimizers after)."""
        vertices, faces = vertices.detach().float().clone(), faces.detach().long().clone()
        self.register_buffer("base_vertices", vertices)
        self.register_buffer("faces", faces)
        self.vertex_offsets = nn.Parameter(torch.zeros_like(vertices), requires_grad=not self.cfg.fix_geometry)
        edges, face_pairs = mesh_topology(faces)
        self.register_buffer("edges", edges, persistent=False)
        self.register_buffer("face_pairs", face_pairs, persistent=False)
        # the offsets' reference frame for the terms holding the starting surface (`regularizers.normal_offset`)
        self.register_buffer("base_normals", outward_vertex_normals(vertices, faces), persistent=False)

    def mesh(self) -> tuple[Tensor, Tensor]:
        """Vertices [V, 3] (differentiable w.r.t. the offsets; inside `sphere_radius`) and faces [F, 3] int64."""
        vertices = self.base_vertices + self.vertex_offsets
        if self.cfg.sphere_radius is not None:
            norm = vertices.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            vertices = vertices * (self.cfg.sphere_radius / norm).clamp(max=1.0)
        return vertices, self.faces

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Resize to the checkpoint's mesh before the usual copy (meshes differ in size between runs)."""
        vertices, faces = state_dict.get(prefix + "base_vertices"), state_dict.get(prefix + "faces")
        if vertices is not None and faces is not None:
            device = self.base_vertices.device
            self.set_mesh(vertices.to(device), faces.to(device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the texture field ---------------------------------------------------------------------------------
    def albedo(self, points: Tensor) -> Tensor:
        """Albedo [N, 3] in [0, 1] at world points [N, 3]."""
        encoded = self.encoding((points / self.cfg.radius).clamp(-1.0, 1.0))
        return torch.sigmoid(self.feature_network(encoded))

    def forward(self, points: Tensor, with_normal: bool = False) -> dict[str, Tensor]:
        """`features` [N, 3]: the albedo (the same key as the NeRF's, for materials and exporters)."""
        return {"features": self.albedo(points)}

    def sample_surface(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n points [n, 3] uniformly distributed over the surface area."""
        vertices, faces = self.mesh()
        corners = vertices.detach()[faces]  # [F, 3, 3]
        area = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1).norm(dim=-1)
        face = torch.multinomial(area, n, replacement=True, generator=generator)
        r1, r2 = torch.rand(2, n, 1, generator=generator)
        s = r1.sqrt()
        bary = torch.cat([1 - s, s * (1 - r2), s * r2], dim=-1)
        return (bary[..., None] * corners[face]).sum(1)

    def fit_texture(self, target: Callable[[Tensor], Tensor], steps: int, n_points: int = 4096,
                    lr: float = 1e-2) -> float:
        """Regress the albedo field onto `target(points) -> [N, 3]` at surface points (also when `fix_texture`
        freezes it for training); returns the final MSE."""
        params = [*self.encoding.parameters(), *self.feature_network.parameters()]
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=lr)
        loss = torch.zeros(())
        for _ in range(steps):
            points = self.sample_surface(n_points)
            with torch.no_grad():
                goal = target(points)
            loss = ((self.albedo(points) - goal) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        return float(loss.detach())

    def _copy_texture(self, previous: nn.Module) -> bool:
        """Copy the albedo branch of a geometry laid out alike (the same `EncodingConfig`); False if not."""
        if not hasattr(previous, "feature_network") or not same_layout(previous.cfg, self.cfg):
            return False
        try:
            self.encoding.load_state_dict(previous.encoding.state_dict())
            self.feature_network.load_state_dict(previous.feature_network.state_dict())
        except RuntimeError:  # one hash grid in tiny-cuda-nn, the other in torch
            return False
        return True

    # -- conversion (threestudio's `geometry_convert_from` / `create_from`) ---------------------------------
    @torch.no_grad()
    def initialize_from(self, previous: nn.Module) -> None:
        """Take the mesh and albedo of an earlier stage: an `implicit-volume` (marching cubes) or a mesh."""
        if isinstance(previous, MeshGeometry):
            self.set_mesh(*previous.mesh())
        elif hasattr(previous, "isosurface_grid"):
            from ui3d.export.isosurface import extract_mesh

            mesh = extract_mesh(previous, self.cfg.isosurface_resolution, self.cfg.isosurface_level,
                                self.cfg.max_faces)
            self.set_mesh(torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces))
        else:
            raise TypeError(f"cannot convert a {type(previous).__name__} into a mesh geometry")
        if not self._copy_texture(previous):
            with torch.enable_grad():
                self.fit_texture(lambda p: previous(p)["features"][:, :3], self.cfg.texture_fit_steps)
