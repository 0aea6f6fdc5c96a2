"""launch.py as a user meets it: dry runs, shorthands, and clear exits on bad input."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def launch(*args, cwd=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_dry_run_shows_the_prompt_and_writes_nothing(tmp_path):
    out = launch("--config", "uniinstruct-fkl.yaml", "--dry-run", 'prompt=a red vase', "steps=2",
                 f"exp_root_dir={tmp_path}/runs")
    assert out.returncode == 0, out.stderr
    assert "prompt: a red vase" in out.stdout
    assert "nerf (2 steps), geometry (2 steps), texture (2 steps)" in out.stdout
    assert f"{tmp_path}/runs/uniinstruct-fkl/a_red_vase@" in out.stdout
    assert not (tmp_path / "runs").exists()


def test_help_documents_flags_and_shorthands():
    out = launch("--help")
    assert out.returncode == 0
    for word in ("--config", "--dry-run", "--stage", "prompt=", "seed=", "steps=", "tag=", "exp_root_dir="):
        assert word in out.stdout


@pytest.mark.parametrize(
    "override, key, closest",
    [("sed=3", "'sed'", "'seed'"), ("trainer.max_step=3", "'trainer.max_step'", "'max_steps'"),
     ("stages.nerf.trainr.max_steps=3", "'stages.nerf.trainr'", "'trainer'")],
)
def test_misspelt_cli_key_exits_2_naming_it(override, key, closest):
    out = launch("--config", "uniinstruct-fkl.yaml", "--dry-run", override)
    assert out.returncode == 2
    assert key in out.stderr and "on the command line" in out.stderr and f"Did you mean {closest}" in out.stderr


def test_misspelt_yaml_key_exits_2_with_file_and_line(tmp_path):
    text = (ROOT / "configs" / "uniinstruct-fkl.yaml").read_text().replace("  val_check_interval:", "  val_check_intervl:")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "val_check_intervl" in s)
    out = launch("--config", str(path), "--dry-run")
    assert out.returncode == 2
    assert f"'trainer.val_check_intervl' in {path}:{line}" in out.stderr
    assert "Did you mean 'val_check_interval'" in out.stderr


def test_bad_value_type_exits_2():
    out = launch("--config", "uniinstruct-fkl.yaml", "--dry-run", "seed=abc")
    assert out.returncode == 2 and "'seed'" in out.stderr


def test_missing_config_lists_the_available_ones():
    out = launch("--config", "nope.yaml", "--dry-run")
    assert out.returncode == 2
    assert "no config 'nope.yaml'" in out.stderr and "uniinstruct-fkl.yaml" in out.stderr


def test_unknown_stage_names_the_stages():
    out = launch("--config", "uniinstruct-fkl.yaml", "--dry-run", "--stage", "mesh")
    assert out.returncode == 2 and "nerf, geometry, texture" in out.stderr


def test_exp_root_dir_that_is_a_file_exits_2_and_says_what_to_set(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    out = launch("--config", "distill2d/uniinstruct-rkl.yaml", "extends=mixture.yaml", "steps=1",
                 f"exp_root_dir={tmp_path}/runs")
    assert out.returncode == 2, out.stderr
    assert "cannot create the run directory" in out.stderr and "exp_root_dir=" in out.stderr
    assert "Traceback" not in out.stderr


def test_override_without_equals_is_explained():
    out = launch("--config", "uniinstruct-fkl.yaml", "--dry-run", "prompt")
    assert out.returncode == 2 and "not key=value" in out.stderr


def test_flags_may_stand_between_overrides(tmp_path):
    out = launch("--config", "uniinstruct-fkl.yaml", "prompt=a red vase", "--stage", "nerf", "steps=3", "--dry-run",
                 "tag=x")
    assert out.returncode == 0, out.stderr
    assert "stages: nerf (3 steps)" in out.stdout and "/x@<timestamp>" in out.stdout


def test_dry_run_shows_a_config_whose_teacher_is_not_on_this_machine(tmp_path):
    out = launch("--config", "sd/dreamfusion.yaml", "--dry-run", "system.guidance.pretrained_model_name_or_path=no/such",
                 "system.prompt_processor.pretrained_model_name_or_path=no/such", f"exp_root_dir={tmp_path}/runs")
    assert out.returncode == 0, out.stderr
    assert "# warning: 'no/such' is neither a folder nor a model in the local Hugging Face cache" in out.stdout
    assert not (tmp_path / "runs").exists()
    run = launch("--config", "sd/dreamfusion.yaml", "system.guidance.pretrained_model_name_or_path=no/such",
                 "system.prompt_processor.pretrained_model_name_or_path=no/such", f"exp_root_dir={tmp_path}/runs")
    assert run.returncode == 2 and "'no/such' is neither a folder" in run.stderr and not (tmp_path / "runs").exists()


NOISE = ("GPU available", "TPU available", "Tip:", "litlogger", "Epoch 0", "LeafSpec", "weights_only",
         "Loading weights", "DataLoader 0")


def test_the_console_shows_one_bar_per_stage_and_ends_with_the_result(tmp_path):
    """No Lightning banners, tips or deprecation noise; bars named for the stage; a summary with the stage's
    steps and time, the files to open and the command that scores them. --verbose brings Lightning's lines back."""
    from tests.systems.test_configs import tiny_overrides
    from ui3d.teachers.loader import EMBEDDED_DIR

    overrides = tiny_overrides("uniinstruct-fkl.yaml", {"embedded": str(EMBEDDED_DIR), "sd": ""}, tmp_path)
    out = launch("--config", "uniinstruct-fkl.yaml", "--stage", "nerf", *overrides, "trainer.val_check_interval=2")
    assert out.returncode == 0, out.stderr[-2000:]
    console = (out.stdout + out.stderr).replace("\r", "\n")
    assert not [word for word in NOISE if word in console]
    assert "nerf: 100%" in console and "2/2" in console and "nerf: turntable" in console
    (run,) = (tmp_path / "uniinstruct-fkl").iterdir()
    tail = out.stdout.splitlines()[-6:]
    assert any(line.split()[:3] == ["nerf", "2", "steps"] for line in tail)
    assert f"run: {run}" in tail and "  nerf/save/turntable.mp4" in tail
    assert tail[-1] == f"score it: python -m ui3d.benchmarks.score_run {run} --stage nerf"
    verbose = launch("--config", "uniinstruct-fkl.yaml", "--stage", "nerf", *overrides, "tag=v", "--verbose")
    assert verbose.returncode == 0 and "GPU available" in verbose.stdout + verbose.stderr
