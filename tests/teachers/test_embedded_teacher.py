"""The shipped embedded teacher and classifier load offline and run fast on CPU."""

import pytest
import torch

from ui3d.teachers.embedded.classifier import HEADS, load_classifier
from ui3d.teachers.embedded.dataset import EmbeddedDataConfig, EmbeddedRenderDataset
from ui3d.teachers.loader import EMBEDDED_DIR, load_teacher

shipped = pytest.mark.skipif(not (EMBEDDED_DIR / "model_index.json").is_file(), reason="embedded teacher not trained")


@shipped
def test_shipped_teacher_loads_offline_and_is_small():
    teacher = load_teacher("embedded")
    assert not teacher.latent and teacher.resolution == 32
    assert sum(f.stat().st_size for f in EMBEDDED_DIR.rglob("*") if f.is_file()) < 20e6
    assert all(f.suffix != ".bin" for f in EMBEDDED_DIR.rglob("*"))  # safetensors only


@shipped
def test_teacher_forward_shape_and_dtype():
    """(Its speed is measured by `python -m ui3d.benchmarks.guidance_speed`, not timed here: a loaded CI machine
    would fail a time limit.)"""
    teacher = load_teacher("embedded")
    emb = teacher.encode_text(["a red striped vase, side view"])
    d = teacher.denoise(torch.randn(1, 3, 32, 32), torch.tensor([500]), emb)
    assert d.shape == (1, 3, 32, 32) and d.dtype == torch.float32


def test_classifier_names_clean_renders():
    model = load_classifier()
    data = EmbeddedRenderDataset(EmbeddedDataConfig(size=40, seed=123), split="test")
    items = [data[i] for i in range(40)]
    pred = model.predict(torch.stack([it["image"] for it in items]))
    assert set(pred) == set(HEADS)
    accuracy = sum(p == it["category"] for p, it in zip(pred["category"], items)) / len(items)
    assert accuracy >= 0.8
    assert model.features(torch.rand(2, 3, 64, 64)).shape == (2, 128)


@shipped
def test_a_fine_tune_keeps_each_known_word_s_embedding_when_the_vocabulary_grows():
    from ui3d.teachers.embedded import model as M
    from ui3d.teachers.embedded.objects import vocabulary
    from ui3d.teachers.embedded.train import init_from

    tokenizer = M.build_tokenizer(["zebra", *vocabulary()])  # a new word first: every known word's id moves
    cfg = M.EmbeddedTeacherConfig()
    modules = torch.nn.ModuleDict({"unet": M.build_unet(cfg), "text": M.build_text_encoder(tokenizer, cfg)})
    init_from(modules, tokenizer, EMBEDDED_DIR)
    teacher = load_teacher("embedded")
    prompt = "a red striped vase, side view"
    ids = tokenizer([prompt], padding="max_length", max_length=M.MAX_LENGTH, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(modules["text"](ids)[0], teacher.encode_text([prompt]), atol=1e-5)
        x, t = torch.randn(1, 3, 32, 32), torch.tensor([500])
        emb = teacher.encode_text([prompt])
        assert torch.equal(modules["unet"](x, t, encoder_hidden_states=emb).sample,
                           teacher.unet(x, t, encoder_hidden_states=emb).sample)
    with pytest.raises(FileNotFoundError, match="not a teacher folder"):
        init_from(modules, tokenizer, EMBEDDED_DIR.parent)


def test_the_training_command_refuses_a_missing_start_and_a_bad_share(tmp_path, capsys):
    from ui3d.teachers.embedded.train import parse_args

    for argv, message in [(["--init-from", str(tmp_path)], "is not a teacher folder"),
                          (["--normal-map-prob", "1.5"], "is not a probability")]:
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert parse_args(["--normal-map-prob", "0.4"]).normal_map_prob == 0.4
