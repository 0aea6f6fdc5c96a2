"""One loader for Stable Diffusion folders and the embedded teacher, tested on tiny random models in memory
(the diffusers dummy-components pattern): nothing is downloaded."""
import pytest
import torch

from tests.tiny_models import build_tiny_embedded_folder, build_tiny_sd_folder, build_tiny_unet_folder
from ui3d.diffusion.samplers import ddim
from ui3d.teachers.embedded import model as embedded
from ui3d.teachers.loader import BrokenTeacher, TeacherNotFound, load_teacher, load_unet_teacher
from ui3d.teachers.teacher import PromptError


@pytest.fixture
def tiny_sd_folder(tmp_path):
    """A Stable-Diffusion-shaped folder: 4-channel latent UNet, 2-block VAE, 2-layer CLIP, PNDM scheduler."""
    return build_tiny_sd_folder(tmp_path)


def test_stable_diffusion_folder_loads_and_runs(tiny_sd_folder):
    teacher = load_teacher(str(tiny_sd_folder))
    assert teacher.latent and teacher.resolution == 16 and teacher.vocabulary() is None
    images = torch.rand(2, 3, 24, 24, requires_grad=True)
    x0 = teacher.encode_images(images)  # resized to 16 px, VAE-encoded, differentiable
    assert x0.shape == (2, 4, 8, 8)
    cond, uncond = teacher.encode_text(["a red vase", "a vase"]), teacher.encode_text(["", ""])
    t = torch.tensor([500, 20])
    alpha, sigma = teacher.schedule.alpha_sigma(t)
    x_t = alpha[:, None, None, None] * x0 + sigma[:, None, None, None] * torch.randn_like(x0)
    d = teacher.denoise_cfg(x_t, t, cond, uncond, guidance_scale=7.5)
    assert d.shape == x0.shape and torch.isfinite(d).all()
    d.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in teacher.parameters())
    assert teacher.decode(x0.detach()).shape == (2, 3, 16, 16)


def test_embedded_layout_loads_through_the_same_loader(tmp_path):
    teacher = load_teacher(str(build_tiny_embedded_folder(tmp_path / "emb")))
    assert not teacher.latent and teacher.resolution == 32
    emb = teacher.encode_text(["a red striped vase, side view"])
    samples = ddim(lambda x, t: teacher.denoise(x, t, emb), torch.randn(1, 3, 32, 32), teacher.schedule, steps=3)
    assert samples.shape == (1, 3, 32, 32)


def test_word_level_tokenizer_round_trip(tmp_path):
    tok = embedded.build_tokenizer()
    tok.save_pretrained(tmp_path)
    from transformers import PreTrainedTokenizerFast

    again = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    ids = again("A red striped vase, side view").input_ids
    assert again.convert_ids_to_tokens(ids) == ["[BOS]", "a", "red", "striped", "vase", ",", "side", "view", "[EOS]"]
    assert again.decode(ids, skip_special_tokens=True) == "a red striped vase , side view"
    assert (tmp_path / "tokenizer.json").is_file()


def test_unknown_words_fail_with_the_vocabulary(tmp_path):
    teacher = load_teacher(str(build_tiny_embedded_folder(tmp_path)))
    with pytest.raises(PromptError) as err:
        teacher.encode_text(["a refined vase with artistic patterns"])
    message = str(err.value)
    assert "'artistic', 'patterns', 'refined', 'with'" in message
    assert "vase" in message and "striped" in message  # the vocabulary is listed
    assert "pretrained_model_name_or_path" in message  # and how to use Stable Diffusion instead


def test_a_prompt_longer_than_the_teacher_reads_is_refused(tmp_path):
    teacher = load_teacher(str(build_tiny_embedded_folder(tmp_path)))
    fits = "a normal map of a vase, overhead view"  # the longest a geometry stage sends: 11 of 12 tokens
    teacher.check_prompts([fits])
    with pytest.raises(PromptError, match="longer than the 12 tokens"):
        teacher.check_prompts(["a normal map of a red striped vase, overhead view"])


def test_missing_teacher_is_explained():
    with pytest.raises(TeacherNotFound, match="local Hugging Face cache"):
        load_teacher("stabilityai/not-a-cached-model")


def test_unet_teacher_folders_load_through_the_loader(tmp_path):
    """`UNet2DModel` teachers (unet-teacher, the digits teacher): loaded frozen, or the loader's one-line errors."""
    unet, scheduler, path = load_unet_teacher(str(build_tiny_unet_folder(tmp_path / "ok")))
    assert path == tmp_path / "ok" and scheduler.config.prediction_type == "v_prediction"
    assert not unet.training and not any(p.requires_grad for p in unet.parameters())
    with pytest.raises(TeacherNotFound, match="no diffusers UNet folder at"):
        load_unet_teacher(tmp_path / "missing")
    broken = build_tiny_unet_folder(tmp_path / "broken")
    (broken / "unet" / "config.json").write_text("{not json")
    with pytest.raises(BrokenTeacher, match="is not valid JSON"):
        load_unet_teacher(broken)
    pickled = build_tiny_unet_folder(tmp_path / "pickled")
    (pickled / "unet" / "diffusion_pytorch_model.safetensors").rename(pickled / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(BrokenTeacher, match="no .safetensors weights"):
        load_unet_teacher(pickled)
    truncated = build_tiny_unet_folder(tmp_path / "truncated")
    (truncated / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(BrokenTeacher, match="does not load as a diffusers UNet2DModel teacher"):
        load_unet_teacher(truncated)
