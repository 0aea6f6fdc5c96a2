"""The fake score: LoRA + camera embedding on the teacher UNet, equal to the teacher at initialisation, and
invisible to every teacher call outside `FakeScore.active()`."""
import torch

from tests.guidance.helpers import cameras, make_guidance, prompt_embeds


def _inputs(teacher):
    torch.manual_seed(0)
    x_t = torch.randn(2, 3, 32, 32)
    t = torch.tensor([100, 700])
    return x_t, t, prompt_embeds(teacher).cond


def test_fake_starts_equal_to_the_teacher(embedded_teacher, cache_dir):
    guidance = make_guidance("vsd", embedded_teacher, cache_dir)
    x_t, t, text = _inputs(embedded_teacher)
    with torch.no_grad():
        d_teacher = embedded_teacher.denoise(x_t, t, text)
        d_fake = guidance.fake.denoise(x_t, t, text, guidance.fake.camera_condition(cameras()))
    assert torch.allclose(d_fake, d_teacher, atol=1e-6)  # zero-initialised LoRA B and camera output layer


def test_adapters_and_camera_act_only_inside_the_fake(embedded_teacher, cache_dir):
    guidance = make_guidance("vsd", embedded_teacher, cache_dir)
    x_t, t, text = _inputs(embedded_teacher)
    fake, unet = guidance.fake, embedded_teacher.unet
    with torch.no_grad():
        before = embedded_teacher.denoise(x_t, t, text)
        for name, p in fake.lora.items():
            if "lora_B" in name:
                p.normal_(std=0.5)
        fake.camera.net[2].weight.normal_(std=0.5)
        posed = fake.denoise(x_t, t, text, fake.camera_condition(cameras()))
        unposed = fake.denoise(x_t, t, text, fake.camera_condition(cameras(), dropout=1.0))
        after = embedded_teacher.denoise(x_t, t, text)
    assert not torch.allclose(posed, before, atol=1e-3) and not torch.allclose(posed, unposed, atol=1e-4)
    assert torch.equal(after, before)  # adapters disabled, no class embedding outside the fake
    assert unet.class_embedding is None
    assert all(p.requires_grad for p in fake.parameters())


def test_camera_dropout_zeroes_whole_cameras(embedded_teacher, cache_dir):
    fake = make_guidance("vsd", embedded_teacher, cache_dir).fake
    c2w = cameras(64)
    camera = fake.camera_condition(c2w, dropout=0.5)
    dropped = (camera == 0).all(1)
    assert 0 < dropped.sum() < 64
    assert torch.equal(camera[~dropped], c2w.reshape(64, 16)[~dropped])


def test_a_new_guidance_replaces_the_previous_adapter(embedded_teacher, cache_dir):
    first = make_guidance("vsd", embedded_teacher, cache_dir, lora_rank=2)
    second = make_guidance("uniinstruct", embedded_teacher, cache_dir, lora_rank=3)
    assert list(embedded_teacher.unet.peft_config) == ["ui3d_fake_score"]
    shapes = {p.shape for n, p in second.fake.lora.items() if "lora_A" in n}
    assert all(s[0] == 3 for s in shapes) and first.fake.lora.keys() == second.fake.lora.keys()
