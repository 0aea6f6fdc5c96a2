"""One command, three stages: a 2-step NeRF → mesh → texture run of the embedded Uni-Instruct config leaves each
stage in its own folder and a textured mesh that reloads in trimesh (OBJ and GLB with UVs and a real texture)."""
import numpy as np
import torch
import trimesh

import launch
from tests.systems.test_configs import teachers, tiny_overrides  # noqa: F401  (pytest fixture)
from ui3d.config import load_config
from ui3d.export.mesh import export_stage

STAGE_OVERRIDES = [f"stages.{stage}.{key}" for stage in ("geometry", "texture") for key in (
    "data.width=16", "data.height=16", "trainer.val_check_interval=1", "trainer.checkpoint_every=1")]
TINY_MESH = ["stages.geometry.system.geometry.isosurface_resolution=32",
             "stages.geometry.system.geometry.max_faces=2000",
             "stages.geometry.system.geometry.texture_fit_steps=5", "stages.texture.system.export.texture_size=256",
             "stages.texture.system.export.turntable_views=4", "stages.texture.system.export.turntable_size=32"]


def _texture_of(mesh: trimesh.Trimesh) -> np.ndarray:
    material = mesh.visual.material
    image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
    return np.asarray(image)


def test_three_stages_in_one_command_export_a_textured_mesh(teachers, tmp_path):  # noqa: F811
    config = "uniinstruct-fkl.yaml"
    overrides = tiny_overrides(config, teachers, tmp_path) + STAGE_OVERRIDES + TINY_MESH
    assert launch.main(["--config", config, *overrides]) == 0
    (run_dir,) = (tmp_path / load_config(config).cfg.name).iterdir()
    for stage in ("nerf", "geometry", "texture"):
        assert (run_dir / stage / "done").read_text().startswith("2 steps")
        assert (run_dir / stage / "ckpts" / "last.ckpt").is_file()
    export = run_dir / "texture" / "save" / "export"
    for name in ("model.obj", "model.mtl", "texture.png", "model.glb", "model.ply"):
        assert (export / name).is_file(), name
    assert list(export.glob("turntable.*"))
    for name in ("model.obj", "model.glb"):
        mesh = trimesh.load(export / name, force="mesh")
        assert len(mesh.faces) > 100 and mesh.visual.uv.shape == (len(mesh.vertices), 2)
        texture = _texture_of(mesh)
        assert texture.ndim == 3 and texture.std() > 1.0  # not a constant image

    # the texture stage resumes from its own checkpoint (the others are done and skipped)
    (run_dir / "texture" / "done").unlink()
    more = [o for o in overrides if not o.startswith("steps=")] + ["steps=3", f"resume={run_dir}", "--stage", "texture"]
    assert launch.main(["--config", config, *more]) == 0
    assert torch.load(run_dir / "texture" / "ckpts" / "last.ckpt", weights_only=False)["global_step"] == 3
    assert (run_dir / "geometry" / "done").read_text().startswith("2 steps")

    # --export from the stage-1 checkpoint: the NeRF is meshed first
    cfg = load_config(config, overrides).cfg
    paths = export_stage(cfg, "nerf", run_dir, texture_size=128, resolution=32, turntable_views=2,
                         turntable_size=32)
    assert paths["glb"] == run_dir / "nerf" / "save" / "export" / "model.glb" and paths["glb"].is_file()
