"""Faults and bad input, as issue #13 probed them: crafted and corrupt files are refused naming them, writes are
atomic, run directories are a run's own, a resume continues the run as it was (same weights as an uninterrupted
run, after kill -9, Ctrl-C or SIGTERM), and bad input exits 2 before anything is written."""
import csv
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import launch
from tests.systems.test_configs import tiny_overrides
from ui3d import files
from ui3d.config import ConfigError, load_config
from ui3d.run import find_resume_dir, make_run_dir
from ui3d.teachers.loader import EMBEDDED_DIR

ROOT = Path(__file__).resolve().parent.parent
TEACHERS = {"embedded": str(EMBEDDED_DIR), "sd": ""}


class Payload:
    """A pickle that runs a shell command when loaded unsafely (what a hostile checkpoint does)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "global_step": 5, "payload": Payload(marker)}, path)
    return path


def tiny(config: str, root: Path, *extra: str) -> list[str]:
    return ["--config", config, "--stage", "nerf", *tiny_overrides(config, TEACHERS, root), *extra]


def run_dir_of(root: Path, name: str) -> Path:
    (run_dir,) = [p for p in (root / name).iterdir() if p.is_dir()]
    return run_dir


# --- files: safe loads, atomic writes ---------------------------------------------------------------------------
def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = crafted(tmp_path / "last.ckpt", marker)
    with pytest.raises(files.UnreadableFile, match=r"last.ckpt cannot be loaded: it asks to import and call Python"):
        files.torch_load(path, "checkpoint")
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "random", "empty"])
def test_a_damaged_torch_file_is_named_with_the_reason(tmp_path, damage):
    path = files.torch_save({"w": torch.ones(1000)}, tmp_path / "x.pt")
    data = path.read_bytes()
    noise = bytes(torch.randint(0, 256, (2000,), generator=torch.Generator().manual_seed(0)).tolist())
    path.write_bytes({"truncate": data[: len(data) // 2], "random": noise, "empty": b""}[damage])
    with pytest.raises(files.UnreadableFile, match=f"checkpoint {path} cannot be loaded: truncated, corrupt or not a"):
        files.torch_load(path, "checkpoint")


def test_any_random_bytes_are_a_damaged_file_not_a_crash(tmp_path):
    # the restricted unpickler fails on foreign bytes in many ways (IndexError, TypeError, ...): each one is a
    # damaged file; 64 seeds cover the ways seen in CI (about 1 in 15 random files raised a bare IndexError)
    path = tmp_path / "x.ckpt"
    for seed in range(64):
        path.write_bytes(random.Random(seed).randbytes(1000))
        with pytest.raises(files.UnreadableFile, match="cannot be loaded: truncated, corrupt or not a"):
            files.torch_load(path, "checkpoint")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = files.torch_save({"step": torch.tensor(20)}, tmp_path / "last.ckpt")

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        files.torch_save({"step": torch.tensor(30)}, path)
    monkeypatch.undo()
    assert int(files.torch_load(path)["step"]) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~files._UMASK)  # not mkstemp's 0600


def test_an_export_folder_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "export"
    with files.atomic_dir(out) as tmp:
        (tmp / "model.obj").write_text("v1")
    with pytest.raises(RuntimeError), files.atomic_dir(out) as tmp:
        (tmp / "model.obj").write_text("half")
        raise RuntimeError("crash while exporting")
    assert (out / "model.obj").read_text() == "v1" and [p.name for p in tmp_path.iterdir()] == ["export"]


def test_a_truncated_cache_is_recomputed_not_fatal(tmp_path, capsys):
    path = files.torch_save({"images": torch.zeros(2, 3)}, tmp_path / "pool.pt")
    path.write_bytes(path.read_bytes()[:100])
    assert files.load_cache(path, "real-pool cache") is None
    assert f"real-pool cache {path} cannot be loaded" in capsys.readouterr().err and not path.exists()


# --- run directories ---------------------------------------------------------------------------------------------
def test_two_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "20260101-000000")
    cfg = load_config("dreamfusion.yaml", [f"exp_root_dir={tmp_path}", "prompt=a vase"]).cfg
    first, second = make_run_dir(cfg), make_run_dir(cfg)
    assert first != second and first.name == "a_vase@20260101-000000" and second.name == "a_vase@20260101-000000-1"
    assert (first / "config.yaml").is_file() and (second / "config.yaml").is_file()
    fixed = load_config("dreamfusion.yaml", [f"exp_root_dir={tmp_path}", "use_timestamp=false"]).cfg
    make_run_dir(fixed)
    with pytest.raises(ConfigError, match="exists: continue it with resume="):
        make_run_dir(fixed)


def test_resume_last_skips_runs_without_a_checkpoint(tmp_path):
    cfg = load_config("dreamfusion.yaml", [f"exp_root_dir={tmp_path}", "prompt=a vase", "resume=LAST"]).cfg
    family = tmp_path / "dreamfusion"
    good, failed = family / "a_vase@20260101-000000", family / "a_vase@20260101-000001"
    (good / "nerf" / "ckpts").mkdir(parents=True)
    (good / "nerf" / "ckpts" / "last.ckpt").write_bytes(b"x")
    failed.mkdir()
    os.utime(good, (1, 1))  # the failed run is the newer one
    assert find_resume_dir(cfg) == good
    shutil.rmtree(good)
    with pytest.raises(FileNotFoundError, match="with a checkpoint to resume \\(1 without a checkpoint\\)"):
        find_resume_dir(cfg)


# --- strict inputs: exit 2, one line, nothing written -------------------------------------------------------------
def broken_teacher(tmp_path: Path, fault: str) -> Path:
    folder = shutil.copytree(EMBEDDED_DIR, tmp_path / f"teacher-{fault}")
    if fault == "json":
        (folder / "model_index.json").write_text("{ not json")
    elif fault == "subfolders":
        for sub in ("unet", "text_encoder", "tokenizer", "scheduler"):
            shutil.rmtree(folder / sub)
    elif fault == "pickle":
        weights = next((folder / "unet").glob("*.safetensors"))
        weights.rename(weights.with_suffix(".bin"))
    return folder


@pytest.mark.parametrize("overrides, message", [
    (["seed=-1"], "seed=-1 on the command line is out of range: give an integer from 0 to"),
    (["steps=0"], "steps=0 on the command line: a run needs at least 1 step"),
    (["steps=-5"], "steps=-5 on the command line: a run needs at least 1 step"),
    (["system.geometry_type=implicit-volum"], "unknown geometry_type 'implicit-volum' on the command line. Did you "
                                              "mean 'implicit-volume'?"),
    (["system.loss.lambda_sparisty=10"], "'system.loss.lambda_sparisty' weighs no loss of this system. Did you mean "
                                         "'lambda_sparsity'?"),
    (["prompt="], 'prompt= is empty: say what to make, e.g. prompt="a red vase"'),
    (["system.prompt_processor.prompt=' '"], "the prompt is empty"),
    (["system.prompt_processor.prompt_template='a normal map'"], "prompt_template must contain {prompt} once"),
    (["system.prompt_processor.prompt_template='a normal map of {prompt}'", "prompt='a red striped vase'"],
     "is longer than the 12 tokens the teacher "),
    (["tag=" + "_".join(["a_red_vase"] * 40)], "over the file-name limit of 255: give the run a short tag="),
    (["prompt=" + " ".join(["a red vase"] * 40)], "is longer than the 12 tokens the teacher "),  # never cut silently
    (["system.guidance.pretrained_model_name_or_path=TEACHER"], "guidance uses teacher 'TEACHER' but "
                                                                "prompt_processor uses"),
    (["teacher=json"], "model_index.json is not valid JSON"),
    (["teacher=subfolders"], "lacks the subfolder unet/ with its config"),
    (["teacher=pickle"], "has no .safetensors weights (pickled .bin files are not loaded"),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, overrides, message, dry_run):
    args = [a for a in tiny("dreamfusion.yaml", tmp_path / "runs") if a != "tag=t"]  # the tag defaults to the prompt
    for item in overrides:
        if item.startswith("teacher="):
            folder = broken_teacher(tmp_path, item.split("=")[1])
            args += [f"system.{part}.pretrained_model_name_or_path={folder}" for part in ("guidance", "prompt_processor")]
        else:
            args.append(item.replace("TEACHER", str(tmp_path / "elsewhere")))
    message = message.replace("TEACHER", str(tmp_path / "elsewhere"))
    code = launch.main(args + (["--dry-run"] if dry_run else []))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# --- crafted and corrupt checkpoints on every path ----------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-step NeRF stage of the headline config (checkpoint every step) to copy and damage."""
    root = tmp_path_factory.mktemp("finished")
    assert launch.main(tiny("uniinstruct-fkl.yaml", root)) == 0
    return run_dir_of(root, "uniinstruct-fkl")


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


@pytest.mark.parametrize("path", ["resume", "export", "convert_from"])
def test_a_crafted_checkpoint_is_refused_on_every_path(finished_run, tmp_path, capsys, path):
    run = copy_run(finished_run, tmp_path)
    marker = tmp_path / "ran"
    crafted(run / "nerf" / "ckpts" / "last.ckpt", marker)
    (run / "nerf" / "ckpts" / "latest.ckpt").unlink()
    args = {"resume": ["--stage", "nerf"], "export": ["--export", "--stage", "nerf"],
            "convert_from": ["--stage", "geometry", "steps=1"]}[path]
    if path == "resume":
        (run / "nerf" / "done").unlink()
    code = launch.main([*args, f"resume={run}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{run / 'nerf' / 'ckpts' / 'last.ckpt'} cannot be loaded: it asks to import and call Python code" in err
    assert not marker.exists() and "Traceback" not in err


def test_a_crafted_warm_start_is_refused_before_the_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    ckpt = crafted(tmp_path / "rkl" / "last.ckpt", marker)
    code = launch.main(["--config", "distill2d/uniinstruct-fkl-warmstart.yaml", "steps=1", f"exp_root_dir={tmp_path}/runs",
                        f"system.warm_start={ckpt}"])
    err = capsys.readouterr().err
    assert code == 2 and f"warm_start checkpoint {ckpt} cannot be loaded: it asks to import" in err
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_a_corrupt_checkpoint_falls_back_to_the_good_one_and_never_to_step_0(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    ckpts = run / "nerf" / "ckpts"
    last = ckpts / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (run / "nerf" / "done").unlink()
    assert launch.main(["--stage", "nerf", f"resume={run}", "steps=3"]) == 0
    err = capsys.readouterr().err
    assert f"{last} cannot be loaded: truncated, corrupt or not a torch file" in err and f"resuming from {ckpts / 'latest.ckpt'} (step 2)" in err
    assert files.torch_load(last)["global_step"] == 3 and (ckpts / "last.ckpt.unreadable").is_file()


def test_no_readable_checkpoint_exits_2_and_writes_no_earlier_state(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    ckpts = run / "nerf" / "ckpts"
    for ckpt in ckpts.glob("*.ckpt"):
        ckpt.write_bytes(random.Random(0).randbytes(1000))
    (run / "nerf" / "done").unlink()
    before = sorted(p.name for p in ckpts.iterdir())
    assert launch.main(["--stage", "nerf", f"resume={run}"]) == 2
    err = capsys.readouterr().err
    assert "no readable checkpoint to resume" in err and "last.ckpt" in err and "latest.ckpt" in err
    assert sorted(p.name for p in ckpts.iterdir()) == before  # no step-0 interrupted.ckpt


# --- resume continues the run as it was --------------------------------------------------------------------------
def test_resume_alone_continues_with_the_runs_own_config(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    (run / "nerf" / "done").unlink()
    assert launch.main(["--stage", "nerf", f"resume={run}"]) == 0  # the run's steps=2, not the config file's 600
    assert files.torch_load(run / "nerf" / "ckpts" / "last.ckpt")["global_step"] == 2


def test_resume_refuses_an_override_that_changes_what_is_trained(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    before = (run / "config.yaml").read_text()
    assert launch.main(["--config", "uniinstruct-fkl.yaml", f"resume={run}", "prompt=a red mug"]) == 2
    err = capsys.readouterr().err
    assert "would change what the run trains (system.prompt_processor.prompt: 'a red vase' -> 'a red mug')" in err
    assert (run / "config.yaml").read_text() == before


def test_resume_with_more_steps_is_recorded_and_appends_the_metrics(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    (run / "nerf" / "done").unlink()
    metrics = run / "nerf" / "logs" / "metrics.csv"
    rows = list(csv.DictReader(metrics.open()))
    assert launch.main(["--config", "uniinstruct-fkl.yaml", "--stage", "nerf", f"resume={run}", "steps=4"]) == 0
    assert "steps: 2 -> 4" in (run / "resumes.log").read_text()
    assert load_config(str(run / "config.yaml")).cfg.steps == 4
    after = list(csv.DictReader(metrics.open()))
    assert [r["step"] for r in after] == ["0", "1", "2", "3"]
    assert [r["train/loss"] for r in after[:2]] == [r["train/loss"] for r in rows]


def test_progress_checkpoint_never_writes_before_training_went_past_its_start():
    from types import SimpleNamespace

    from ui3d.systems.runner import ProgressCheckpoint

    saved = []
    trainer = SimpleNamespace(global_step=20, save_checkpoint=saved.append)
    callback = ProgressCheckpoint(dirpath="ckpts", filename="interrupted")
    callback.on_exception(trainer, None, RuntimeError("restore failed"))  # before on_train_start: a load failed
    callback.on_train_start(trainer, None)
    callback.on_exception(trainer, None, RuntimeError("crash at the step it resumed from"))
    trainer.global_step = 21
    callback.on_exception(trainer, None, KeyboardInterrupt())
    assert saved == [os.path.join("ckpts", "interrupted.ckpt")]


def test_export_of_an_unfinished_stage_says_which_step(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path)
    (run / "nerf" / "done").unlink()
    assert launch.main(["--export", "--stage", "nerf", f"resume={run}", "system.export.turntable_views=0",
                        "system.export.texture_size=64"]) == 0
    assert "stage 'nerf' has not finished: exporting its checkpoint at step 2 of 2" in capsys.readouterr().err


# --- kill -9, Ctrl-C, SIGTERM: resumed runs end where uninterrupted ones do ---------------------------------------
def fault_args(root: Path, tag: str, val_every: int = 4) -> list[str]:
    drop = ("steps=", "trainer.checkpoint_every=", "trainer.val_check_interval=", "tag=")
    return ["--config", "uniinstruct-fkl.yaml", "--stage", "nerf", f"tag={tag}", "steps=5", "trainer.checkpoint_every=2",
            f"trainer.val_check_interval={val_every}", "system.guidance.rkl_warm_start_steps=2",
            *[o for o in tiny_overrides("uniinstruct-fkl.yaml", TEACHERS, root) if not o.startswith(drop)]]


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def weights(run: Path) -> torch.Tensor:
    ckpt = files.torch_load(run / "nerf" / "ckpts" / "last.ckpt")
    state = {**ckpt["state_dict"], **{f"guidance.{k}": v for k, v in ckpt["guidance_state"].items()}}
    return torch.cat([v.double().flatten() for _, v in sorted(state.items()) if v.is_floating_point()])


def run_scripts(jobs: dict[str, tuple[str, ...]]) -> dict[str, subprocess.CompletedProcess]:
    """`run_script` for each job, two at a time (each one thread): they are mostly interpreter start and tiny steps."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_script, *args) for name, args in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


FAULTS = [
    ("KILL", 4, -9, None),
    ("INT", 4, 130, "interrupted: continue with"),  # stops before step 3
    ("TERM", 4, 143, "terminated (SIGTERM): continue with"),  # Lightning's SIGTERMException after step 3
    ("TERM", 3, 143, "terminated (SIGTERM): continue with"),  # stops in the validation after step 3
]


@pytest.fixture(scope="module")
def faulted(tmp_path_factory):
    """The uninterrupted run beside the four faulted ones (`tests/fault_run.py` signals itself after step 3), then
    the four resumed: (the uninterrupted run, {tag: (faulted process, resumed process, its run, `before_resume`)})."""
    root = tmp_path_factory.mktemp("faults")
    tags = {f"{signal_name}{val_every}": (signal_name, val_every) for signal_name, val_every, _, _ in FAULTS}
    first = run_scripts({"whole": ("launch.py", *fault_args(root, "whole")),
                         **{tag: ("tests/fault_run.py", signal_name, "3", *fault_args(root, tag, val_every))
                            for tag, (signal_name, val_every) in tags.items()}})
    assert first["whole"].returncode == 0, first["whole"].stderr[-3000:]
    runs = {tag: next((root / "uniinstruct-fkl").glob(f"{tag}@*"), None) for tag in tags}  # None: no run made
    before = {tag: before_resume(run) for tag, run in runs.items()}
    resumed = run_scripts({tag: ("launch.py", f"resume={run}", "--stage", "nerf") for tag, run in runs.items() if run})
    return next((root / "uniinstruct-fkl").glob("whole@*")), {
        tag: (first[tag], resumed.get(tag), runs[tag], before[tag]) for tag in tags}


def before_resume(run: Path | None) -> tuple[bool, int | None]:
    """What a faulted run left for the resume: whether its stage has a `done` file, and the step of its
    `interrupted.ckpt` (None without one)."""
    if run is None:
        return False, None
    interrupted = run / "nerf" / "ckpts" / "interrupted.ckpt"
    step = files.torch_load(interrupted)["global_step"] if interrupted.exists() else None
    return (run / "nerf" / "done").exists(), step


@pytest.mark.parametrize("signal_name, val_every, code, says", FAULTS)
def test_a_faulted_run_resumes_to_the_weights_of_an_uninterrupted_one(faulted, signal_name, val_every, code, says):
    """Validation draws no training randomness, so the uninterrupted run (validating every 4 steps) is the
    reference for every case."""
    whole, results = faulted
    out, resumed, run, (was_done, interrupted_at) = results[f"{signal_name}{val_every}"]
    assert out.returncode == code, out.stderr[-3000:]
    assert run is not None and not was_done
    if says:
        assert f"{says}  python launch.py resume={run}" in out.stderr
        assert interrupted_at == 3
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = weights(whole), weights(run)
    assert ((a - b).norm() / a.norm()).item() <= 1e-6
    rows = [list(csv.DictReader((r / "nerf" / "logs" / "metrics.csv").open())) for r in (whole, run)]
    assert rows[0] == rows[1]
