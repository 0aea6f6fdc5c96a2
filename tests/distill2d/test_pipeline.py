"""A 2D run's student as a diffusers pipeline: saved at the end of training (and by --export), loaded back with
the student's samples, and loaded without running or writing code from the folder, refusing damaged weights."""
import json
import shutil

import numpy as np
import pytest
import torch

import launch
import ui3d
from tests.systems.test_distill2d import fast, unet_overrides
from tests.tiny_models import build_tiny_unet_folder
from ui3d.files import UnreadableFile


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step run of the class-conditional recipe on a tiny random UNet teacher (8×8, 1 channel)."""
    root = tmp_path_factory.mktemp("pipeline")
    folder = build_tiny_unet_folder(root / "unet")
    assert launch.main(["--config", "distill2d/digits.yaml", *fast(root, 2), *unet_overrides(folder, "digits.yaml")]) == 0
    (run,) = (root / "distill2d-digits").iterdir()
    return run


def test_the_saved_pipeline_gives_the_students_samples(run, tmp_path):
    saved = sorted(p.relative_to(run / "pipeline").as_posix() for p in (run / "pipeline").rglob("*") if p.is_file())
    assert saved == ["model_index.json", "pipeline.py", "student/config.json",
                     "student/diffusion_pytorch_model.safetensors"]  # nothing pickled
    pipe = ui3d.OneStepPipeline.from_pretrained(run / "pipeline")
    student = ui3d.load_student(run)
    images = pipe(6, generator=torch.Generator().manual_seed(3), output_type="pt").images
    assert images.shape == (6, 1, 8, 8) and torch.equal(images, student.sample(6, seed=3))
    pil = pipe(6, generator=torch.Generator().manual_seed(3)).images
    assert [im.size for im in pil] == [(8, 8)] * 6
    assert np.array_equal(np.stack([np.asarray(im) for im in pil]), (images[:, 0].numpy() * 255).round())
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labelled = pipe(class_labels=[3, 7], generator=g, output_type="pt").images
    assert torch.equal(labelled, ((student.system.ema(z, torch.tensor([3, 7])) + 1) / 2).clamp(0, 1))
    with pytest.raises(ValueError, match=r"class_labels must be integers in \[0, 10\)"):
        pipe(class_labels=[10])
    shutil.rmtree(run / "pipeline")  # a run finished before pipelines were saved: --export writes it
    assert launch.main(["--export", f"resume={run}"]) == 0
    again = ui3d.OneStepPipeline.from_pretrained(run / "pipeline")
    assert torch.equal(again(6, generator=torch.Generator().manual_seed(3), output_type="pt").images, images)


def test_loading_runs_and_writes_no_code_from_the_folder(run, tmp_path, monkeypatch):
    import diffusers
    from diffusers.utils import dynamic_modules_utils

    modules = tmp_path / "modules"
    monkeypatch.setattr(dynamic_modules_utils, "HF_MODULES_CACHE", str(modules))
    folder = shutil.copytree(run / "pipeline", tmp_path / "pipe")
    marker = tmp_path / "ran"
    planted = f"open({str(marker)!r}, 'w').write('ran')\nfrom ui3d.distill2d.pipeline import *  # noqa\n"
    (folder / "pipeline.py").write_text(planted)
    pipe = ui3d.OneStepPipeline.from_pretrained(folder)
    assert type(pipe) is ui3d.OneStepPipeline and not marker.exists() and not modules.exists()
    (folder / "student" / "ui3d.distill2d.pipeline.py").write_text(planted)  # diffusers' custom-component file
    with pytest.raises(UnreadableFile, match=r"holds Python code in its components \(student/ui3d.distill2d"):
        ui3d.OneStepPipeline.from_pretrained(folder)
    (folder / "student" / "ui3d.distill2d.pipeline.py").unlink()
    index = json.loads((folder / "model_index.json").read_text())
    for key, value in [("student", ["builtins", "eval"]), ("feature_extractor", ["os", "system"]),
                       ("_class_name", ["pipeline", "OneStepPipeline"])]:
        (folder / "model_index.json").write_text(json.dumps({**index, key: value}))
        with pytest.raises(UnreadableFile, match="refused|does not describe a OneStepPipeline"):
            ui3d.OneStepPipeline.from_pretrained(folder)
    assert not marker.exists()
    # diffusers' own way, asked for explicitly: the folder's pipeline.py (ours) names this class
    shutil.copy(run / "pipeline" / "pipeline.py", folder / "pipeline.py")
    (folder / "model_index.json").write_text(json.dumps(index))
    loaded = diffusers.DiffusionPipeline.from_pretrained(folder, custom_pipeline=str(folder / "pipeline.py"),
                                                         trust_remote_code=True)
    assert type(loaded).__name__ == "OneStepPipeline" and modules.exists()
    same = [p(3, generator=torch.Generator().manual_seed(1), output_type="pt").images for p in (loaded, pipe)]
    assert torch.equal(*same)


def test_missing_or_damaged_weights_are_named(run, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(run / "pipeline", tmp_path / "pipe")
    weights = folder / "student" / "diffusion_pytorch_model.safetensors"
    state = {k: v.clone() for k, v in load_file(weights).items()}  # not views of the file truncated below
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(UnreadableFile, match="cannot be loaded: Unable to load weights from checkpoint file"):
        ui3d.OneStepPipeline.from_pretrained(folder)
    save_file({k: v for k, v in state.items() if "class_embedding" not in k}, weights)
    with pytest.raises(UnreadableFile, match=r"lacks 1 tensor\(s\) \(generator.denoiser.unet.class_embedding.weight\)"):
        ui3d.OneStepPipeline.from_pretrained(folder)  # diffusers would fill it at random, with a warning
    weights.unlink()
    torch.save(state, weights.with_suffix(".bin"))
    with pytest.raises(UnreadableFile, match="diffusion_pytorch_model.safetensors is missing"):
        ui3d.OneStepPipeline.from_pretrained(folder)
    with pytest.raises(UnreadableFile, match="no model_index.json"):
        ui3d.OneStepPipeline.from_pretrained(tmp_path)
