"""A UNet's mid-block features without its decoder equal, bit for bit, what a hook on the mid block captures
inside the full call (the discriminators read them), gradients included, for the UNets the project uses."""
import pytest
import torch
from diffusers import UNet2DModel

from tests.tiny_models import tiny_embedded_config
from ui3d.diffusion.unet_encoder import capture_mid_block, mid_block_features
from ui3d.guidance.fake_score import FakeScore
from ui3d.teachers.embedded import model as embedded
from ui3d.teachers.teacher import DiffusionTeacher


def hooked(unet, call):
    """The mid block's output inside the full call."""
    with capture_mid_block(unet) as features:
        call()
    (out,) = features
    return out


def tiny_unet2d(**overrides) -> UNet2DModel:
    """The digits teacher's layout at 8×8, class-conditional (11 labels with the null one)."""
    torch.manual_seed(0)
    return UNet2DModel(**{
        "sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": (8, 16), "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D"), "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
        "norm_num_groups": 4, "attention_head_dim": 8, "num_class_embeds": 11, **overrides})


def test_class_conditional_unet2d_with_gradients():
    unet = tiny_unet2d()
    x, t, labels = torch.randn(3, 1, 8, 8, requires_grad=True), torch.tensor([3, 400, 999]), torch.tensor([0, 5, 10])
    full = hooked(unet, lambda: unet(x, t, class_labels=labels))
    ours = mid_block_features(unet, x, t, class_labels=labels)
    assert torch.equal(ours, full)
    weight = torch.randn_like(ours)
    grads = [torch.autograd.grad((f * weight).sum(), x, retain_graph=True)[0] for f in (full, ours)]
    assert torch.equal(*grads) and grads[0].abs().sum() > 0


def teacher() -> DiffusionTeacher:
    torch.manual_seed(0)
    cfg, tok = tiny_embedded_config(), embedded.build_tokenizer()
    return DiffusionTeacher(embedded.build_unet(cfg), embedded.build_scheduler(cfg),
                            embedded.build_text_encoder(tok, cfg), tok, name="tiny").requires_grad_(False)


def test_text_conditional_teacher_and_its_lora_fake_score():
    """The embedded layout's UNet2DConditionModel (cross-attention down and mid blocks), then the same UNet with
    the fake score's LoRA adapters and camera class embedding on."""
    tiny = teacher()
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([20, 700])
    text = tiny.encode_text(["a red vase", "a vase"])
    full = hooked(tiny.unet, lambda: tiny.denoise(x, t, text))
    assert torch.equal(tiny.encoder_features(x, t, text), full)
    fake = FakeScore(tiny, rank=4)
    with torch.no_grad():
        for p in fake.parameters():  # LoRA B and the camera's output layer start at zero
            p.add_(0.1 * torch.randn_like(p))
    camera = torch.randn(2, 16)
    fake_full = hooked(tiny.unet, lambda: fake.denoise(x, t, text, camera))
    assert torch.equal(fake.encoder_features(x, t, text, camera), fake_full)
    assert not torch.allclose(fake_full, full)  # the adapters and the camera really were on


def test_a_unet_without_mid_block_is_refused():
    unet = tiny_unet2d(mid_block_type=None)
    with pytest.raises(ValueError, match="has none"):
        mid_block_features(unet, torch.randn(1, 1, 8, 8), torch.tensor([1]), class_labels=torch.tensor([1]))
