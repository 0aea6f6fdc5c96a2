"""The guidance follows the trainer: Lightning's device and precision reach the teacher, the fake score, the
discriminator and the prompt embeddings (which are not submodules of the system), and `half_precision_weights`
loads the teacher in fp16 while the trained parts stay fp32. Runs the tiny Stable-Diffusion-shaped folder on CPU;
`trainer.precision=64-true` stands in for a device move (Lightning applies both through `Module._apply`)."""
import pytest
import torch

import launch
from tests.systems.test_configs import tiny_overrides
from tests.tiny_models import SD_WORDS, build_tiny_sd_folder
from ui3d.config import TrainerConfig
from ui3d.systems import text_to_3d
from ui3d.systems.runner import teacher_dtype


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return str(build_tiny_sd_folder(tmp_path_factory.mktemp("sd") / "sd", SD_WORDS))


def train_and_look(monkeypatch, sd_folder, tmp_path, *extra) -> dict:
    """Two steps of sd/uniinstruct-fkl.yaml's NeRF stage; the dtypes of everything the guidance ran."""
    seen = {}
    step = text_to_3d.TextTo3DSystem.training_step

    def spy(self, batch, batch_idx):
        loss = step(self, batch, batch_idx)
        guidance = self.guidance
        seen.update(loss=float(loss), embeds=self.prompt_processor.uncond.dtype,
                    modules={type(m).__name__: {p.dtype for p in m.parameters()} for m in guidance.modules()},
                    unet={p.dtype for n, p in guidance.teacher.unet.named_parameters() if "lora_" not in n},
                    lora={p.dtype for p in guidance.fake.lora.values()}, grads={
                        p.grad.dtype for g in guidance.trainable_parameters() for p in g["params"] if p.grad is not None})
        return loss

    monkeypatch.setattr(text_to_3d.TextTo3DSystem, "training_step", spy)
    config = "sd/uniinstruct-fkl.yaml"
    code = launch.main(["--config", config, "--stage", "nerf",
                        *tiny_overrides(config, {"sd": sd_folder, "embedded": ""}, tmp_path), *extra])
    assert code == 0
    return seen


def test_the_guidance_follows_the_trainers_precision(monkeypatch, sd_folder, tmp_path):
    seen = train_and_look(monkeypatch, sd_folder, tmp_path, "trainer.precision=64-true")
    assert seen["modules"] == {"DiffusionTeacher": {torch.float64}, "CameraEmbedding": {torch.float64},
                               "DiscriminatorHead": {torch.float64}}
    assert seen["embeds"] == torch.float64 and seen["lora"] == {torch.float64} and seen["grads"] == {torch.float64}
    assert torch.isfinite(torch.tensor(seen["loss"]))


def test_half_precision_weights_keep_the_trained_parts_in_fp32(monkeypatch, sd_folder, tmp_path):
    seen = train_and_look(monkeypatch, sd_folder, tmp_path, "system.guidance.half_precision_weights=true")
    assert seen["unet"] == {torch.float16}
    assert seen["lora"] == {torch.float32} and seen["grads"] == {torch.float32}
    assert seen["modules"]["CameraEmbedding"] == {torch.float32} and seen["modules"]["DiscriminatorHead"] == {torch.float32}
    assert torch.isfinite(torch.tensor(seen["loss"]))


def test_half_precision_weights_auto_is_fp16_on_cuda_only(monkeypatch):
    cpu = TrainerConfig(accelerator="cpu")
    assert teacher_dtype("auto", cpu) == torch.float32 and teacher_dtype(False, cpu) == torch.float32
    assert teacher_dtype(True, cpu) in (torch.float16, torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert teacher_dtype("auto", TrainerConfig(accelerator="auto")) == torch.float16
    assert teacher_dtype("auto", TrainerConfig(accelerator="cpu")) == torch.float32
    with pytest.raises(ValueError, match="half_precision_weights must be true, false or auto"):
        teacher_dtype("half", cpu)


def test_memory_options_reach_the_teacher(sd_folder):
    from diffusers.models.attention_processor import AttnProcessor2_0, SlicedAttnProcessor

    from ui3d.guidance.sds import SDSGuidance
    from ui3d.teachers.loader import load_teacher

    def guidance(**options):
        return SDSGuidance(SDSGuidance.Config(pretrained_model_name_or_path=sd_folder, **options), load_teacher(sd_folder))

    plain = guidance()
    assert not plain.teacher.vae.use_slicing and not plain.teacher.vae.use_tiling
    sdpa = guidance(enable_memory_efficient_attention=True)
    assert {type(p) for p in sdpa.teacher.unet.attn_processors.values()} == {AttnProcessor2_0}
    sliced = guidance(enable_attention_slicing=True)
    assert {type(p) for p in sliced.teacher.unet.attn_processors.values()} == {SlicedAttnProcessor}
    channels_last = guidance(enable_channels_last_format=True)
    conv = channels_last.teacher.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    vae = guidance(enable_vae_slicing=True, enable_vae_tiling=True).teacher.vae
    assert vae.use_slicing and vae.use_tiling
    offload = guidance(offload_text_encoder=True)
    offload.apply(lambda t: t.to("meta"))  # a device move (to the meta device: no GPU here)
    assert next(offload.teacher.unet.parameters()).device.type == "meta"
    assert next(offload.teacher.text_encoder.parameters()).device.type == "cpu"
    plain.apply(lambda t: t.to("meta"))
    assert next(plain.teacher.text_encoder.parameters()).device.type == "meta"


def test_memory_options_train(monkeypatch, sd_folder, tmp_path):
    seen = train_and_look(monkeypatch, sd_folder, tmp_path, *[f"system.guidance.{key}=true" for key in (
        "enable_attention_slicing", "enable_memory_efficient_attention", "enable_channels_last_format",
        "enable_vae_slicing", "enable_vae_tiling", "offload_text_encoder")])
    assert torch.isfinite(torch.tensor(seen["loss"]))


def make_lora(folder: str, out) -> str:
    """A LoRA file for the tiny UNet (random, non-zero), saved as diffusers saves LoRA weights."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(1)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(unet))
    return str(out / "pytorch_lora_weights.safetensors")


def test_a_teacher_lora_is_fused_into_plain_weights(sd_folder, tmp_path, monkeypatch):
    from ui3d.teachers.loader import BrokenTeacher, load_teacher

    lora = make_lora(sd_folder, tmp_path / "lora")
    plain, fused = load_teacher(sd_folder), load_teacher(sd_folder, lora=lora, lora_scale=0.5)
    q = lambda t: t.unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1.to_q  # noqa: E731
    assert not torch.equal(q(plain).weight, q(fused).weight) and type(q(fused)) is torch.nn.Linear
    assert not getattr(fused.unet, "peft_config", None) and fused.fingerprint != plain.fingerprint
    with pytest.raises(BrokenTeacher, match="give an existing LoRA .safetensors file"):
        load_teacher(sd_folder, lora=str(tmp_path / "lora.bin"))
    seen = train_and_look(monkeypatch, sd_folder, tmp_path / "run", f"system.guidance.teacher_lora={lora}")
    assert torch.isfinite(torch.tensor(seen["loss"]))


@pytest.mark.parametrize("pipeline, says", [("StableDiffusionXLPipeline", "SDXL"), ("IFPipeline", "DeepFloyd IF")])
def test_sdxl_and_deepfloyd_folders_are_refused_naming_what_is_missing(sd_folder, tmp_path, pipeline, says):
    import json
    import shutil

    from ui3d.teachers.loader import BrokenTeacher, load_teacher

    folder = shutil.copytree(sd_folder, tmp_path / "other")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": pipeline}))
    with pytest.raises(BrokenTeacher, match=f"is a {pipeline} folder: {says}"):
        load_teacher(str(folder))


@pytest.fixture(scope="module")
def single_file(sd_folder, tmp_path_factory):
    """The tiny SD folder as one original-layout (LDM) safetensors file, as SD 1.x checkpoints are shared."""
    from pathlib import Path

    from tests.tiny_models import write_ldm_checkpoint

    return str(write_ldm_checkpoint(Path(sd_folder), tmp_path_factory.mktemp("single") / "tiny-sd.safetensors"))


def test_a_single_file_checkpoint_loads_the_same_teacher_as_its_folder(sd_folder, single_file, tmp_path):
    from pathlib import Path

    from tests.tiny_models import write_ldm_checkpoint
    from ui3d.teachers.loader import load_teacher, load_tokenizer

    folder = load_teacher(sd_folder)
    ckpt = str(write_ldm_checkpoint(Path(sd_folder), tmp_path / "tiny-sd.ckpt"))  # torch.save'd, nested state_dict
    for path in (single_file, ckpt):
        teacher = load_teacher(path, config=sd_folder, dtype=torch.float16)
        assert teacher.unet.dtype == torch.float16 and teacher.prediction_type == folder.prediction_type
        for name in ("unet", "vae", "text_encoder"):
            mine, theirs = getattr(teacher, name).state_dict(), getattr(folder, name).state_dict()
            assert mine.keys() == theirs.keys()
            assert all(torch.equal(mine[k], theirs[k].half()) for k in mine), name
        assert teacher.fingerprint.startswith(str(Path(path).resolve()))
    assert load_tokenizer(single_file, sd_folder)("a red vase").input_ids == folder.tokenizer("a red vase").input_ids


def test_a_single_file_teacher_trains_a_nerf(monkeypatch, sd_folder, single_file, tmp_path):
    seen = train_and_look(monkeypatch, sd_folder, tmp_path, f"system.guidance.pretrained_model_name_or_path={single_file}",
                          f"system.prompt_processor.pretrained_model_name_or_path={single_file}",
                          f"system.guidance.teacher_config={sd_folder}")
    assert torch.isfinite(torch.tensor(seen["loss"]))


def test_a_single_file_without_its_configs_or_with_code_inside_is_refused(single_file, tmp_path, capsys):
    import pickle

    from ui3d.teachers.loader import BrokenTeacher, TeacherNotFound, load_teacher

    with pytest.raises(TeacherNotFound, match="give teacher_config="):  # SD 1.5's configs are not in the cache
        load_teacher(single_file)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": {"x": Payload()}}))
    with pytest.raises(BrokenTeacher, match="evil.ckpt"):
        load_teacher(str(evil), config=single_file)
    assert not marker.exists()
    with pytest.raises(TeacherNotFound, match="does not exist"):
        load_teacher(str(tmp_path / "missing.safetensors"))
    code = launch.main(["--config", "sd/uniinstruct-fkl.yaml", "--dry-run", "prompt=a red vase",
                        f"system.guidance.pretrained_model_name_or_path={evil}",
                        f"system.prompt_processor.pretrained_model_name_or_path={evil}"])
    assert code == 2 and "evil.ckpt" in capsys.readouterr().err
