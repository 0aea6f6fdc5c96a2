"""2D one-step distillation through launch.py: every recipe in configs/distill2d/ trains 3 steps (on a tiny
random class-conditional UNet teacher, and the base configs on their own teachers), resume and the RKL → FKL warm
start carry the networks over, and two DDP processes (gloo) end with the same generator."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import launch
import ui3d
from tests.tiny_models import build_tiny_embedded_folder, build_tiny_unet_folder
from ui3d.config import CONFIG_DIR, load_config
from ui3d.teachers.loader import EMBEDDED_DIR
from ui3d.teachers.teacher import PromptError

RECIPES = sorted(p.name for p in (CONFIG_DIR / "distill2d").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]

MIXTURE_FAST = ["system.teacher.fit_steps=50", "system.teacher.hidden=32", "system.batch_size=32",
                "system.n_eval_samples=200"]


def fast(root, steps: int = 3) -> list[str]:
    return [f"steps={steps}", f"exp_root_dir={root}", "tag=t", "trainer.val_check_interval=1",
            "trainer.checkpoint_every=1", "trainer.log_every_n_steps=1", "system.grid_samples=4"]


@pytest.fixture(scope="module")
def unet_teacher(tmp_path_factory):
    return build_tiny_unet_folder(tmp_path_factory.mktemp("unet"))


@pytest.fixture(scope="module")
def unet_teacher_16(tmp_path_factory):
    """At MNIST's 16×16, for the recipes whose discriminator reads MNIST digits (`real_data: mnist`)."""
    return build_tiny_unet_folder(tmp_path_factory.mktemp("unet16"), resolution=16)


def reads_mnist(recipe: str) -> bool:
    return load_config(f"distill2d/{recipe}").cfg.system.teacher.get("real_data") == "mnist"


def unet_overrides(folder, recipe: str = "") -> list[str]:
    extends = [] if recipe == "digits.yaml" or reads_mnist(recipe) else ["extends=digits.yaml"]
    return [*extends, f"system.teacher.pretrained_model_name_or_path={folder}", "system.batch_size=4",
            "system.teacher.real_pool=8", "system.teacher.real_steps=2", "system.n_eval_samples=8"]


def only_run(root: Path) -> Path:
    (name,) = [p for p in root.iterdir() if p.is_dir()]
    (run,) = list(name.iterdir())
    return run / "main"


TEACHER_CONFIGS = ("mixture.yaml", "mixture-dropped.yaml", "embedded.yaml")  # bases a recipe `extends=`


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r not in TEACHER_CONFIGS])
def test_recipe_trains_three_steps(recipe, unet_teacher, unet_teacher_16, tmp_path):
    folder = unet_teacher_16 if reads_mnist(recipe) else unet_teacher
    assert launch.main(["--config", f"distill2d/{recipe}", *fast(tmp_path), *unet_overrides(folder, recipe)]) == 0
    stage = only_run(tmp_path)
    assert (stage / "done").read_text().startswith("3 steps")
    assert (stage / "ckpts" / "last.ckpt").is_file() and (stage / "save" / "samples.png").is_file()
    assert (stage / "save" / "it1.png").is_file() and (stage / "logs" / "metrics.csv").is_file()


@pytest.mark.parametrize("config, n_modes", [("mixture.yaml", 8), ("mixture-dropped.yaml", 2)])
def test_mixture_config_reports_against_the_exact_mixture(tmp_path, config, n_modes):
    assert launch.main(["--config", f"distill2d/{config}", *fast(tmp_path), *MIXTURE_FAST]) == 0
    metrics = json.loads((only_run(tmp_path) / "save" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["samples"]["n_modes"] == n_modes
    assert len(metrics["samples"]["mode_mass"]) == n_modes
    assert {"mmd", "mmd_floor", "modes_covered", "mode_tv", "precision", "recall"} <= set(metrics["samples"])
    assert set(metrics["ratio"]) == {"t200", "t400", "t600", "t800"}


def test_digits_run_scores_its_samples_and_keeps_them(tmp_path):
    """On the shipped MNIST teacher the end of a run writes the classifier metrics and the evaluated samples
    (uint8, with their labels) that the benchmark's Inception FID reads."""
    overrides = ["system.batch_size=4", "system.teacher.real_pool=8", "system.teacher.real_steps=2",
                 "system.n_eval_samples=8"]
    assert launch.main(["--config", "distill2d/digits.yaml", *fast(tmp_path, 1), *overrides]) == 0
    save = only_run(tmp_path) / "save"
    metrics = json.loads((save / "metrics.json").read_text())["samples"]
    assert metrics["n"] == 8 and metrics["fd_clf"] > 0
    kept = torch.load(save / "samples.pt")
    assert kept["images"].shape == (8, 1, 16, 16) and kept["images"].dtype == torch.uint8
    assert kept["labels"].shape == (8,) and 0 <= int(kept["labels"].min()) and int(kept["labels"].max()) < 10


def test_embedded_config_trains_a_text_to_image_generator(tmp_path):
    teacher = EMBEDDED_DIR if (EMBEDDED_DIR / "model_index.json").is_file() else build_tiny_embedded_folder(tmp_path / "emb")
    overrides = [f"system.teacher.pretrained_model_name_or_path={teacher}", "system.batch_size=2",
                 "system.teacher.real_pool=4", "system.teacher.real_steps=2", "system.teacher.prompts=[a red vase]"]
    assert launch.main(["--config", "distill2d/embedded.yaml", *fast(tmp_path, 2), *overrides]) == 0
    assert (only_run(tmp_path) / "done").read_text().startswith("2 steps")
    run = only_run(tmp_path).parent  # its student as a pipeline: text encoder and tokenizer saved beside it
    pipe = ui3d.OneStepPipeline.from_pretrained(run / "pipeline")
    images = pipe(2, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert images.shape == (2, 3, 32, 32) and torch.equal(images, ui3d.load_student(run).sample(2, seed=0))
    with pytest.raises(PromptError, match="'refined'"):
        pipe("a refined vase")


def generator_state(stage: Path) -> dict:
    state = torch.load(stage / "ckpts" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("generator.")}


def test_wandb_logger_writes_an_offline_run_beside_the_csv_log(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "")
    monkeypatch.delenv("WANDB_MODE")  # unset: the run goes offline by default (and is unset again after the test)
    for key in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(key, str(tmp_path / "wandb-home"))
    assert launch.main(["--config", "distill2d/mixture.yaml", *fast(tmp_path / "runs", 2), *MIXTURE_FAST,
                        "trainer.logger=wandb"]) == 0
    stage = only_run(tmp_path / "runs")
    (offline,) = (stage / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb")) and (stage / "logs" / "metrics.csv").is_file()
    assert os.environ["WANDB_MODE"] == "offline" and wandb.run is None  # the stage finished its wandb run


def test_resume_continues_the_run(tmp_path):
    assert launch.main(["--config", "distill2d/mixture.yaml", *fast(tmp_path, 2), *MIXTURE_FAST]) == 0
    stage = only_run(tmp_path)
    (stage / "done").unlink()
    more = [o for o in fast(tmp_path, 4) if o != "tag=t"]
    assert launch.main(["--config", "distill2d/mixture.yaml", *more, *MIXTURE_FAST, f"resume={stage.parent}"]) == 0
    assert (stage / "done").read_text().startswith("4 steps")


def test_rkl_to_fkl_warm_start_loads_the_rkl_run(tmp_path):
    rkl = ["--config", "distill2d/uniinstruct-rkl.yaml", "extends=mixture.yaml", *MIXTURE_FAST]
    assert launch.main([*rkl, *fast(tmp_path / "rkl", 2)]) == 0
    rkl_stage = only_run(tmp_path / "rkl")
    frozen = ["system.lr_generator=0.0"]  # Adam with lr 0: the generator stays what the warm start loaded
    fkl = ["--config", "distill2d/uniinstruct-fkl.yaml", "extends=mixture.yaml", *MIXTURE_FAST, *frozen,
           f"system.warm_start={rkl_stage.parent}"]
    assert launch.main([*fkl, *fast(tmp_path / "fkl", 2)]) == 0
    loaded, saved = generator_state(only_run(tmp_path / "fkl")), generator_state(rkl_stage)
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_bad_loss_key_fails_before_the_run(tmp_path, capsys):
    code = launch.main(["--config", "distill2d/mixture.yaml", *fast(tmp_path), "system.loss.divergance=fkl"])
    assert code == 2 and "divergance" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad, message", [("system.teacher.weights=[1,2]", "2 weights for 8 modes"),
                                          ("system.teacher.init_modes=[8]", "must name modes 0 to 7")])
def test_bad_mixture_teacher_fails_before_the_run(tmp_path, capsys, bad, message):
    code = launch.main(["--config", "distill2d/mixture.yaml", *fast(tmp_path), bad])
    assert code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("classes, resolution, message", [(11, 8, "makes 1×8×8 samples"),
                                                          (3, 16, "this one has 3 class embeddings")])
def test_mnist_real_data_on_a_teacher_it_does_not_fit_fails_before_the_run(tmp_path, capsys, classes, resolution,
                                                                             message):
    folder = build_tiny_unet_folder(tmp_path / "teacher", classes=classes, resolution=resolution)
    code = launch.main(["--config", "distill2d/uniinstruct-fkl-gan-real.yaml", *fast(tmp_path / "runs"),
                        f"system.teacher.pretrained_model_name_or_path={folder}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("broken, message", [(False, "no diffusers UNet folder at"), (True, "is not valid JSON")])
def test_bad_unet_teacher_folder_fails_before_the_run(tmp_path, capsys, broken, message):
    folder = tmp_path / "teacher"
    if broken:
        (folder / "unet").mkdir(parents=True)
        (folder / "unet" / "config.json").write_text("{not json")
    code = launch.main(["--config", "distill2d/digits.yaml", *fast(tmp_path / "runs"),
                        f"system.teacher.pretrained_model_name_or_path={folder}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_ddp_two_cpu_processes_agree_on_the_generator(tmp_path):
    cmd = [sys.executable, "launch.py", "--config", "distill2d/mixture.yaml", *fast(tmp_path), *MIXTURE_FAST,
           "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = json.loads((only_run(tmp_path) / "save" / "ranks.json").read_text())
    assert ranks["world_size"] == 2
    assert ranks["checksums"][0] == ranks["checksums"][1]
