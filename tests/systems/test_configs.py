"""Every config in configs/ trains 2 steps of its NeRF stage at 16 px on CPU through launch.py — the embedded
teacher for the embedded configs, a tiny random Stable-Diffusion-shaped folder for configs/sd/ — and leaves a
resumable run directory with checkpoints, validation grids, a turntable and logs."""
import pytest

import launch
from tests.tiny_models import SD_WORDS, build_tiny_embedded_folder, build_tiny_sd_folder
from ui3d.config import CONFIG_DIR, load_config
from ui3d.teachers.loader import EMBEDDED_DIR

CONFIGS = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml") if "distill2d" not in p.parts)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    embedded = EMBEDDED_DIR if (EMBEDDED_DIR / "model_index.json").is_file() else build_tiny_embedded_folder(root / "emb")
    return {"embedded": str(embedded), "sd": str(build_tiny_sd_folder(root / "sd", SD_WORDS))}


def tiny_overrides(config: str, teachers: dict, root) -> list[str]:
    cfg = load_config(config).cfg  # its `extends:` chain merged
    teacher = teachers["sd" if config.startswith("sd/") else "embedded"]
    overrides = [
        "steps=2", "prompt=a red vase", f"exp_root_dir={root}", "tag=t", "data.width=16", "data.height=16",
        "data.eval_width=16", "data.eval_height=16", "data.n_val_views=1", "data.n_test_views=2",
        "trainer.val_check_interval=1", "trainer.checkpoint_every=1", "trainer.log_every_n_steps=1", "system.renderer.num_samples_per_ray=16",
        "system.renderer.grid_update_every=1",
        f"system.guidance.pretrained_model_name_or_path={teacher}",
        f"system.prompt_processor.pretrained_model_name_or_path={teacher}",
        f"system.prompt_processor.cache_dir={root}/text_cache",
    ]
    if cfg.system.geometry.get("encoding") == "hashgrid":
        overrides += ["system.geometry.hash_levels=4", "system.geometry.hash_log2_table_size=12"]
    if cfg.system.guidance_type == "uniinstruct":
        overrides += ["system.guidance.real_pool_size=2", "system.guidance.real_sampling_steps=2",
                      f"system.guidance.real_pool_cache_dir={root}/real_pool"]
    return overrides


@pytest.mark.parametrize("config", CONFIGS)
def test_config_trains_two_steps(config, teachers, tmp_path):
    assert launch.main(["--config", config, "--stage", "nerf", *tiny_overrides(config, teachers, tmp_path)]) == 0
    (run_dir,) = (tmp_path / load_config(config).cfg.name).iterdir()
    stage = run_dir / "nerf"
    assert (run_dir / "config.yaml").is_file() and (stage / "done").read_text().startswith("2 steps")
    assert (stage / "ckpts" / "last.ckpt").is_file()
    assert list((stage / "save").glob("it*-0.png")) and list((stage / "save").glob("turntable.*"))
    assert (stage / "logs" / "metrics.csv").is_file()


def test_interrupted_stage_resumes_from_its_checkpoint(teachers, tmp_path):
    import torch

    overrides = tiny_overrides("dreamfusion.yaml", teachers, tmp_path)
    assert launch.main(["--config", "dreamfusion.yaml", *overrides]) == 0
    (run_dir,) = (tmp_path / "dreamfusion").iterdir()
    (run_dir / "nerf" / "done").unlink()  # as if the run had stopped after its last checkpoint at step 2
    more = [o for o in overrides if not o.startswith("steps=")] + ["steps=3", f"resume={run_dir}"]
    assert launch.main(["--config", "dreamfusion.yaml", *more]) == 0
    assert len(list((tmp_path / "dreamfusion").iterdir())) == 1  # same run directory
    ckpt = torch.load(run_dir / "nerf" / "ckpts" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
    assert (run_dir / "nerf" / "done").read_text().startswith("3 steps")


def test_unknown_prompt_word_fails_before_anything_is_written(teachers, tmp_path, capsys):
    overrides = [o for o in tiny_overrides("dreamfusion.yaml", teachers, tmp_path) if not o.startswith("prompt=")]
    code = launch.main(["--config", "dreamfusion.yaml", "prompt=a refined vase with artistic patterns", *overrides])
    assert code == 2
    err = capsys.readouterr().err
    assert "'artistic'" in err and "Its vocabulary" in err
    assert not (tmp_path / "dreamfusion").exists()
