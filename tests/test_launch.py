"""launch.py as a user meets it: dry runs, shorthands, and clear exits on bad input."""
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


def launch(*args, cwd=ROOT):
    """launch.py in a fresh process: for what only a fresh process shows (the console, --help)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "launch.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def main(capsys):
    """launch.py's `main` in this process (a fresh interpreter costs seconds of imports per call), with the same
    exit code and console text as `launch`."""
    from ui3d.cli import main as cli_main

    def call(*args):
        capsys.readouterr()
        try:
            code = cli_main(list(args))
        except SystemExit as err:  # argparse's own exits
            code = err.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return call


def test_dry_run_shows_the_prompt_and_writes_nothing(tmp_path, main):
    out = main("--config", "uniinstruct-fkl.yaml", "--dry-run", 'prompt=a red vase', "steps=2",
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
def test_misspelt_cli_key_exits_2_naming_it(override, key, closest, main):
    out = main("--config", "uniinstruct-fkl.yaml", "--dry-run", override)
    assert out.returncode == 2
    assert key in out.stderr and "on the command line" in out.stderr and f"Did you mean {closest}" in out.stderr


def test_misspelt_yaml_key_exits_2_with_file_and_line(tmp_path, main):
    text = (ROOT / "configs" / "uniinstruct-fkl.yaml").read_text().replace("  val_check_interval:", "  val_check_intervl:")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "val_check_intervl" in s)
    out = main("--config", str(path), "--dry-run")
    assert out.returncode == 2
    assert f"'trainer.val_check_intervl' in {path}:{line}" in out.stderr
    assert "Did you mean 'val_check_interval'" in out.stderr


def test_bad_value_type_exits_2(main):
    out = main("--config", "uniinstruct-fkl.yaml", "--dry-run", "seed=abc")
    assert out.returncode == 2 and "'seed'" in out.stderr


def test_missing_config_lists_the_available_ones(main):
    out = main("--config", "nope.yaml", "--dry-run")
    assert out.returncode == 2
    assert "no config 'nope.yaml'" in out.stderr and "uniinstruct-fkl.yaml" in out.stderr


def test_unknown_stage_names_the_stages(main):
    out = main("--config", "uniinstruct-fkl.yaml", "--dry-run", "--stage", "mesh")
    assert out.returncode == 2 and "nerf, geometry, texture" in out.stderr


def test_exp_root_dir_that_is_a_file_exits_2_and_says_what_to_set(tmp_path, main):
    (tmp_path / "runs").write_text("not a folder")
    out = main("--config", "distill2d/uniinstruct-rkl.yaml", "extends=mixture.yaml", "steps=1",
                 f"exp_root_dir={tmp_path}/runs")
    assert out.returncode == 2, out.stderr
    assert "cannot create the run directory" in out.stderr and "exp_root_dir=" in out.stderr
    assert "Traceback" not in out.stderr


def test_override_without_equals_is_explained(main):
    out = main("--config", "uniinstruct-fkl.yaml", "--dry-run", "prompt")
    assert out.returncode == 2 and "not key=value" in out.stderr


def test_flags_may_stand_between_overrides(tmp_path, main):
    out = main("--config", "uniinstruct-fkl.yaml", "prompt=a red vase", "--stage", "nerf", "steps=3", "--dry-run",
                 "tag=x")
    assert out.returncode == 0, out.stderr
    assert "stages: nerf (3 steps)" in out.stdout and "/x@<timestamp>" in out.stdout


def test_dry_run_shows_a_config_whose_teacher_is_not_on_this_machine(tmp_path, main):
    out = main("--config", "sd/dreamfusion.yaml", "--dry-run", "system.guidance.pretrained_model_name_or_path=no/such",
                 "system.prompt_processor.pretrained_model_name_or_path=no/such", f"exp_root_dir={tmp_path}/runs")
    assert out.returncode == 0, out.stderr
    assert "# warning: 'no/such' is neither a folder nor a model in the local Hugging Face cache" in out.stdout
    assert not (tmp_path / "runs").exists()
    run = main("--config", "sd/dreamfusion.yaml", "system.guidance.pretrained_model_name_or_path=no/such",
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


def test_threestudio_flags_names_and_trainer_keys_are_accepted_and_checked(tmp_path, main):
    base = ["--config", "dreamfusion.yaml", "prompt=a vase", "--dry-run"]
    out = main(*base, "--train", "system_type=dreamfusion-system", "system.guidance_type=stable-diffusion-guidance",
                 "system.prompt_processor_type=stable-diffusion-prompt-processor", "trainer.gradient_clip_val=1.0",
                 "trainer.accumulate_grad_batches=2", "trainer.max_epochs=-1", "--gpu", "0")
    assert out.returncode == 0, out.stderr
    for line in ("system_type: text-to-3d-system", "  guidance_type: sds", "  prompt_processor_type: prompt-processor",
                 "  gradient_clip_val: 1.0", "  accumulate_grad_batches: 2", "  accelerator: gpu", "  devices: 1"):
        assert line in out.stdout.splitlines(), line
    for bad, says in [(("trainer.max_epochs=10",), "a stage ends at trainer.max_steps"),
                      (("trainer.gradient_clip_val=-1",), "must be positive"),
                      (("trainer.accumulate_grad_batches=0",), "must be at least 1"),
                      (("--gpu", "zero"), "give CUDA device numbers"), (("--test", "--export"), "give one of")]:
        out = main(*base, *bad)
        assert out.returncode == 2 and says in out.stderr, (bad, out.stderr)
    if not __import__("torch").cuda.is_available():
        out = main("--config", "dreamfusion.yaml", "prompt=a vase", "--gpu", "0", f"exp_root_dir={tmp_path}")
        assert out.returncode == 2 and "drop --gpu" in out.stderr and not any(tmp_path.iterdir())


def test_make_trainer_passes_the_trainer_keys_on(tmp_path):
    from ui3d.config import TrainerConfig
    from ui3d.systems.runner import make_trainer

    trainer = make_trainer(TrainerConfig(gradient_clip_val=0.5, gradient_clip_algorithm="value",
                                         accumulate_grad_batches=3, enable_progress_bar=False), tmp_path / "s")
    assert (trainer.gradient_clip_val, trainer.gradient_clip_algorithm) == (0.5, "value")
    assert trainer.accumulate_grad_batches == 3 and trainer.progress_bar_callback is None


def test_validate_and_test_render_a_trained_stage_again(tmp_path, capsys):
    import launch as launcher
    from tests.systems.test_configs import tiny_overrides
    from ui3d.teachers.loader import EMBEDDED_DIR

    overrides = tiny_overrides("uniinstruct-fkl.yaml", {"embedded": str(EMBEDDED_DIR), "sd": ""}, tmp_path)
    assert launcher.main(["--config", "uniinstruct-fkl.yaml", "--test", *overrides]) == 2
    assert "--test needs the run" in capsys.readouterr().err
    assert launcher.main(["--config", "uniinstruct-fkl.yaml", "--stage", "nerf", *overrides]) == 0
    (run,) = (tmp_path / "uniinstruct-fkl").iterdir()
    save = run / "nerf" / "save"
    for path in [*save.glob("it*.png"), *save.glob("turntable.*")]:
        path.unlink()
    assert launcher.main(["--test", f"resume={run}"]) == 0
    assert [p.name for p in save.glob("turntable.*")] and not list(save.glob("it*.png"))
    assert launcher.main(["--validate", f"resume={run}", "--stage", "nerf"]) == 0
    assert sorted(p.name for p in save.glob("it*.png")) == ["it2-0.png"]
    assert launcher.main(["--test", f"resume={run}", "--stage", "geometry"]) == 2
    assert "has no checkpoint" in capsys.readouterr().err


def test_a_prompt_batch_skips_finished_prompts_goes_on_after_a_failure_and_ends_with_a_table(tmp_path, capsys,
                                                                                               monkeypatch):
    """The first prompt has a finished run: the batch (here from Python) skips it, trains the second in a run
    directory of its own, records the failing third and goes on; a later batch and `resume=LAST` find the runs."""
    import launch as launcher
    import ui3d
    from tests.systems.test_configs import tiny_overrides
    from ui3d.config import load_config
    from ui3d.run import find_resume_dir, make_run_dir
    from ui3d.systems.text_to_3d import TextTo3DSystem
    from ui3d.teachers.loader import EMBEDDED_DIR

    overrides = [o for o in tiny_overrides("uniinstruct-fkl.yaml", {"embedded": str(EMBEDDED_DIR), "sd": ""}, tmp_path)
                 if not o.startswith(("prompt=", "tag="))]
    finished = make_run_dir(load_config("uniinstruct-fkl.yaml", [*overrides, "prompt=a red vase"]).cfg)
    (finished / "nerf" / "ckpts").mkdir(parents=True)
    (finished / "nerf" / "ckpts" / "last.ckpt").write_bytes(b"")
    (finished / "nerf" / "done").write_text("2 steps, 1.0 s\n")
    run = TextTo3DSystem.run.__func__

    def failing(cls, stage, stage_dir, experiment):
        if experiment.system.prompt_processor.prompt == "a green ball":
            raise RuntimeError("out of memory")
        return run(cls, stage, stage_dir, experiment)

    monkeypatch.setattr(TextTo3DSystem, "run", classmethod(failing))
    with pytest.raises(ui3d.LaunchError, match="1 of 3 prompts failed: 'a green ball': RuntimeError: out of memory"):
        ui3d.generate(["a red vase", "a blue mug", "a green ball"], stage="nerf", **dict(o.split("=", 1) for o in overrides))
    table = capsys.readouterr().out.splitlines()
    table = table[max(i for i, line in enumerate(table) if line.startswith("line  prompt  ")):]
    rows = {prompt: next(line for line in table if f"  {prompt}  " in line)
            for prompt in ("a red vase", "a blue mug", "a green ball")}
    mug = next((tmp_path / "uniinstruct-fkl").glob("a_blue_mug@*"))
    assert (mug / "nerf" / "done").read_text().startswith("2 steps")
    assert rows["a red vase"].endswith(f"skipped (already done)  -      -    {finished}")
    assert re.search(rf"  done +[0-9.]+ s  -    {mug}$", rows["a blue mug"])
    assert "  failed  " in rows["a green ball"] and "line 3: RuntimeError: out of memory" in table

    monkeypatch.undo()
    (finished / "nerf" / "done").unlink()  # as if that run had stopped after its last checkpoint
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# three prompts\na red vase\n\na blue mug\na green ball\n")
    assert launcher.main(["--config", "uniinstruct-fkl.yaml", "--stage", "nerf", *overrides, "--prompts", str(prompts),
                          "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert f"2     a red vase    resume                  -     -    {finished}" in plan
    assert f"4     a blue mug    skipped (already done)  -     -    {mug}" in plan
    assert "5     a green ball  new  " in plan  # its failed run has no checkpoint: a new run
    cfg = load_config("uniinstruct-fkl.yaml", [*overrides, "prompt=a blue mug"]).cfg
    assert find_resume_dir(cfg, "LAST") == mug  # what a single run with resume=LAST continues


def test_a_prompt_batch_checks_every_prompt_before_it_writes_anything(tmp_path, capsys):
    import launch as launcher

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na red vase\n\na refined vase\na blue mug with a handle\n")
    runs = tmp_path / "runs"
    code = launcher.main(["--config", "uniinstruct-fkl.yaml", f"prompt=@{prompts}", f"exp_root_dir={runs}", "steps=1"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and not runs.exists()
    assert err[0].startswith(f"error: {prompts}:4: 'a refined vase': the teacher") and err[0].endswith("'refined'.")
    assert err[1].startswith(f"error: {prompts}:5: ") and err[1].endswith("the word(s) 'handle', 'with'.")
    assert "Its vocabulary" in err[2]
    for args, says in [(["--prompts", str(prompts), "prompt=a vase"], "not both"),
                       (["--prompts", str(tmp_path / "none.txt")], "cannot read the prompt file"),
                       (["--prompts", str(prompts), "resume=LAST"], "drop resume=")]:
        assert launcher.main(["--config", "uniinstruct-fkl.yaml", *args, f"exp_root_dir={runs}"]) == 2
        assert says in capsys.readouterr().err and not runs.exists()


def test_trainer_logger_is_checked_before_anything_runs(tmp_path, capsys, monkeypatch):
    import launch as launcher

    base = ["--config", "distill2d/mixture.yaml", "steps=1", f"exp_root_dir={tmp_path}/runs"]
    assert launcher.main([*base, "trainer.logger=wandbb", "--dry-run"]) == 2
    assert ("trainer.logger=wandbb on the command line is not a logger: give one of csv, wandb. Did you mean 'wandb'?"
            in capsys.readouterr().err)
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if wandb were not installed
    assert launcher.main([*base, "trainer.logger=wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: trainer.logger=wandb on the command line: wandb is not installed; pip install wandb, or "
                   "drop trainer.logger (metrics.csv is always written)")
    assert not (tmp_path / "runs").exists()


def test_a_stage_resumed_mid_epoch_counts_its_bar_from_its_step_to_max_steps():
    """Lightning calls no on_train_epoch_start on a mid-epoch resume: the bar must still show step / max_steps."""
    from ui3d.systems.runner import StageProgressBar

    bar = StageProgressBar("nerf")
    trainer = SimpleNamespace(max_steps=600, global_step=209)
    bar.on_train_start(trainer, None)
    tqdm_bar = bar.train_progress_bar
    assert (tqdm_bar.total, tqdm_bar.n, tqdm_bar.desc.rstrip(": ")) == (600, 209, "nerf")
    tqdm_bar.close()
