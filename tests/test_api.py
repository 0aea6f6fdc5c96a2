"""The Python API (`ui3d.generate`, `ui3d.distill`, `ui3d.load_student`): launch.py's runs as objects."""
import pytest
import torch

import ui3d
from tests.systems.test_configs import tiny_overrides
from tests.systems.test_distill2d import MIXTURE_FAST, fast
from ui3d.teachers.loader import EMBEDDED_DIR


def as_kwargs(pairs: list[str]) -> dict:
    return dict(pair.split("=", 1) for pair in pairs)


def test_generate_returns_the_run_its_stage_times_and_the_exported_mesh(tmp_path):
    overrides = as_kwargs(tiny_overrides("uniinstruct-fkl.yaml", {"embedded": str(EMBEDDED_DIR), "sd": ""}, tmp_path))
    overrides.pop("prompt")
    result = ui3d.generate("a red vase", **overrides)
    assert result.run_dir.parent == tmp_path / "uniinstruct-fkl" and (result.run_dir / "config.yaml").is_file()
    assert result.stage_steps == {"geometry": 2, "nerf": 2, "texture": 2}
    assert set(result.stage_seconds) == {"geometry", "nerf", "texture"} and all(
        s > 0 for s in result.stage_seconds.values())
    assert result.glb == result.run_dir / "texture" / "save" / "export" / "model.glb" and result.glb.is_file()
    assert result.obj.is_file() and result.turntable.parent == result.glb.parent
    again = ui3d.generate("a red vase", stage="nerf", **{**overrides, "tag": "n"})
    assert again.stage_steps == {"nerf": 2} and again.glb is None
    assert again.turntable == again.run_dir / "nerf" / "save" / "turntable.mp4"
    with pytest.raises(ui3d.LaunchError, match="is empty: say what to make") as err:
        ui3d.generate(" ", **overrides)
    assert err.value.code == 2
    with pytest.raises(ui3d.LaunchError, match="unknown config key 'system.guidance.divergenc'"):
        ui3d.generate("a vase", **{**overrides, "system.guidance.divergenc": "jkl"})


def test_a_distilled_student_loads_back_and_samples(tmp_path):
    run = ui3d.distill("distill2d/mixture.yaml", **as_kwargs([*fast(tmp_path), *MIXTURE_FAST]))
    assert run.stage_steps == {"main": 3}
    student = ui3d.load_student(run.run_dir)
    a, b = student.sample(8, seed=3), student.sample(8, seed=3)
    assert a.shape == (8, 2) and torch.equal(a, b) and not torch.equal(a, student.sample(8, seed=4))
    system = student.system  # the EMA generator of the checkpoint, not a fresh one
    saved = torch.load(run.run_dir / "main" / "ckpts" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, saved[f"ema.{k}"]) for k, v in system.ema.state_dict().items())
    assert ui3d.distill.losses is not None  # the subpackage is still the subpackage
    with pytest.raises(ui3d.config.ConfigError, match="no student at"):
        ui3d.load_student(tmp_path / "nothing")
