"""Each guidance runs one step on a latent (SD-shaped, VAE) and a pixel (embedded-layout) teacher; auxiliary
losses move only their own parameters; schedules and gradient clipping act as configured."""
import pytest
import torch

from tests.guidance.helpers import cameras, make_guidance, prompt_embeds
from ui3d.guidance.sds import SDSGuidance
from ui3d.guidance.uniinstruct import UniInstructGuidance
from ui3d.guidance.vsd import VSDGuidance
from ui3d.registry import find

OWN_LOSSES = {"sds": ["loss_sds"], "vsd": ["loss_vsd", "loss_lora"],
              "uniinstruct": ["loss_uniinstruct", "loss_lora", "loss_disc"]}


def test_registered_names():
    assert (find("sds"), find("vsd"), find("uniinstruct")) == (SDSGuidance, VSDGuidance, UniInstructGuidance)


@pytest.mark.parametrize("name", ["sds", "vsd", "uniinstruct"])
@pytest.mark.parametrize("teacher_kind", ["sd_teacher", "embedded_teacher"])
def test_one_step_gives_finite_losses_and_render_gradients(name, teacher_kind, request, cache_dir):
    teacher = request.getfixturevalue(teacher_kind)
    guidance = make_guidance(name, teacher, cache_dir)
    rgb = torch.rand(2, 24, 24, 3, requires_grad=True)  # resized to the teacher's resolution
    out = guidance(rgb, prompt_embeds(teacher), cameras(), global_step=0)
    assert sorted(k for k in out if k.startswith("loss_") and k != "loss_gan") == sorted(OWN_LOSSES[name])
    assert all(torch.isfinite(v).all() for v in out.values())
    out[f"loss_{name}"].backward()
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0
    groups = guidance.trainable_parameters()
    assert len(groups) == {"sds": 0, "vsd": 1, "uniinstruct": 2}[name]
    assert all(p.requires_grad for g in groups for p in g["params"])


@pytest.mark.parametrize("name", ["vsd", "uniinstruct"])
def test_each_loss_moves_only_its_own_parameters(name, embedded_teacher, cache_dir):
    guidance = make_guidance(name, embedded_teacher, cache_dir)
    lora = list(guidance.fake.lora.values())
    camera = list(guidance.fake.camera.parameters())
    head = list(guidance.head.parameters()) if name == "uniinstruct" else []
    rgb = torch.rand(2, 32, 32, 3, requires_grad=True)
    out = guidance(rgb, prompt_embeds(embedded_teacher), cameras(), global_step=0)
    everything = [rgb, *lora, *camera, *head]

    def grads(loss):
        return torch.autograd.grad(loss, everything, allow_unused=True, retain_graph=True)

    generator = grads(out[f"loss_{name}"])
    assert generator[0] is not None and all(g is None for g in generator[1:])  # rgb only
    fake = grads(out["loss_lora"])
    assert fake[0] is None and all(g is None for g in fake[len(lora) + len(camera) + 1:])
    assert any(g is not None and g.abs().sum() > 0 for g in fake[1:len(lora) + 1])  # LoRA B gets a gradient
    assert fake[len(lora) + len(camera)].abs().sum() > 0  # the zero-initialised camera output layer too
    if name == "uniinstruct":
        disc = grads(out["loss_disc"])
        assert all(g is None for g in disc[: 1 + len(lora) + len(camera)])
        assert disc[-2].abs().sum() > 0  # the head's zero-initialised output conv learns
    # one backward of the sum, as the system does: the fake score's gradients survive peft's adapter toggling
    sum(v for k, v in out.items() if k.startswith("loss_") and v.requires_grad).backward()
    assert all(p.grad is not None for p in lora if "lora_B" in guidance_name(guidance, p))


def guidance_name(guidance, param):
    return next(n for n, p in guidance.fake.lora.items() if p is param)


def test_step_schedules_bound_the_timesteps(embedded_teacher, cache_dir):
    guidance = make_guidance("sds", embedded_teacher, cache_dir, min_step_percent=0.02,
                             max_step_percent=[0, 0.98, 0.5, 100])
    guidance.update_step(100)
    assert guidance.max_step_percent == pytest.approx(0.5)
    t = guidance.sample_t(500)
    assert t.min() >= 20 and t.max() < 500


def test_shared_t_noises_every_view_of_a_batch_at_one_timestep(embedded_teacher, cache_dir):
    rgb = torch.rand(8, 32, 32, 3)
    torch.manual_seed(0)
    shared = make_guidance("uniinstruct", embedded_teacher, cache_dir, shared_t=True).noised_render(rgb).t
    own = make_guidance("uniinstruct", embedded_teacher, cache_dir).noised_render(rgb).t
    assert shared.shape == own.shape == (8,) and len(set(shared.tolist())) == 1 and len(set(own.tolist())) > 1


def test_grad_clip_bounds_the_gradient_on_x0(embedded_teacher, cache_dir):
    guidance = make_guidance("sds", embedded_teacher, cache_dir, grad_clip=0.01)
    rgb = torch.rand(2, 32, 32, 3, requires_grad=True)
    guidance(rgb, prompt_embeds(embedded_teacher), cameras())["loss_sds"].backward()
    # pixel teacher: x0 = 2 rgb − 1, so |d/d rgb| ≤ 2 · clip / B; guidance scale 100 saturates the clamp
    assert rgb.grad.abs().max() == pytest.approx(0.01, rel=1e-5)


def test_state_dict_round_trip(embedded_teacher, cache_dir):
    guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir)
    state = {k: torch.randn_like(v) for k, v in guidance.state_dict().items()}
    assert any(k.startswith("lora.") for k in state) and any(k.startswith("disc.") for k in state)
    guidance.load_state_dict(state)
    assert all(torch.equal(state[k], v) for k, v in guidance.state_dict().items())


def test_eps_power_schedule_moves_the_weighting_from_sds_to_eps_units(embedded_teacher, cache_dir):
    """`eps_power: [10, 0, 1, 11]` with `eps-sds`: the loss is `sds`'s until step 10, ε-unit σ²'s from step 11."""
    x0 = torch.rand(2, 3, 32, 32, requires_grad=True)
    scheduled = make_guidance("uniinstruct", embedded_teacher, cache_dir, weighting="eps-sds",
                              eps_power=[10, 0.0, 1.0, 11])
    noised = scheduled.noise(x0, torch.tensor([100, 700]))
    d_teacher, d_fake, logit = torch.rand_like(x0), torch.rand_like(x0), torch.zeros(2)

    def loss(guidance, step):
        guidance.update_step(step)
        return guidance.generator_loss(noised, d_teacher, d_fake, logit)["loss"]

    sds = make_guidance("uniinstruct", embedded_teacher, cache_dir, weighting="sds")
    eps = make_guidance("uniinstruct", embedded_teacher, cache_dir, weighting="eps-sds")
    torch.testing.assert_close(loss(scheduled, 5), loss(sds, 5))
    torch.testing.assert_close(loss(scheduled, 20), loss(eps, 20))
    assert not torch.allclose(loss(sds, 20), loss(eps, 20))
