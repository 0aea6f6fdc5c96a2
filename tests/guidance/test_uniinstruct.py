"""Uni-Instruct guidance: every divergence in both forms, every discriminator, and the real-image pool."""
import dataclasses
import math

import pytest
import torch
from PIL import Image

from tests.guidance.helpers import analytic_teacher, cameras, make_guidance, prompt_embeds, to_x0
from ui3d import divergences
from ui3d.config import build
from ui3d.distill.objective import ObjectiveConfig
from ui3d.distill.real_pool import RealPool


@pytest.mark.parametrize("form", ["exact", "paper"])
def test_every_divergence_and_form_puts_its_known_gradient_on_the_render(form, tmp_path):
    """Teacher and fake denoisers that ignore x_t (D_q = target, D_p = fake) and a head saying r = e^0.8 whatever
    the features leave only the direct term on x0 = 2 rgb − 1, with the table's coefficients at the drawn t:
    exact −2h(r) δ; paper (C1(r) − C2(r) ‖δ‖² α²/σ²) δ, δ = D_q − D_p (uniform weighting, one render)."""
    teacher, unet = analytic_teacher()
    g = torch.Generator().manual_seed(2)
    target, fake, rgb0 = (torch.rand(1, 32, 32, 3, generator=g) for _ in range(3))
    unet.target, unet.fake_target = to_x0(target), to_x0(fake)
    delta = unet.target - unet.fake_target
    guidance = make_guidance("uniinstruct", teacher, tmp_path, form=form, weighting="uniform")
    with torch.no_grad():
        guidance.head.net[2].bias.fill_(0.8)
    embeds, r = prompt_embeds(teacher, ["a red vase, side view"]), torch.tensor(math.exp(0.8))
    for name in divergences.names():
        guidance.cfg.divergence = name
        guidance.objective = guidance.objective.__class__(guidance.objective_config())
        rgb = rgb0.clone().requires_grad_(True)
        out = guidance(rgb, embeds, cameras(1), global_step=0)
        (grad,) = torch.autograd.grad(out["loss_uniinstruct"], rgb)
        div = divergences.get(name)
        if form == "exact":
            coefficient = -2 * div.h(r)
        else:
            alpha, sigma = teacher.schedule.alpha_sigma(out["t"].long()[None])
            coefficient = div.c1(r) - div.c2(r) * (delta**2).sum() * alpha**2 / sigma**2
        expected = (2 * coefficient * delta).permute(0, 2, 3, 1)  # d x0 / d rgb = 2
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item(), msg=name)


@pytest.mark.parametrize("kind", ["teacher", "fake", "channel-mean"])
def test_every_discriminator_reads_mid_block_features(kind, embedded_teacher, cache_dir):
    guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir, discriminator=kind, detach_ratio=True,
                             view_dependent_prompting=kind != "fake")
    out = guidance(torch.rand(2, 32, 32, 3, requires_grad=True), prompt_embeds(embedded_teacher), cameras())
    assert torch.isfinite(out["loss_disc"]) and torch.isfinite(out["r"])
    assert out["loss_disc"].requires_grad == (kind != "channel-mean")
    assert len(guidance.trainable_parameters()) == (1 if kind == "channel-mean" else 2)


def test_discriminator_training_separates_real_from_renders(embedded_teacher, cache_dir):
    torch.manual_seed(0)  # t, noise and the real draws: not whatever earlier tests left in the global generator
    guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir, disc_lr=1e-2)
    optimizer = torch.optim.Adam(guidance.trainable_parameters())
    embeds, rgb = prompt_embeds(embedded_teacher), torch.zeros(2, 32, 32, 3)  # black renders
    history = []
    for _ in range(12):
        out = guidance(rgb, embeds, cameras())
        history.append(out["loss_disc"].item())
        optimizer.zero_grad()
        out["loss_disc"].backward()
        optimizer.step()
    assert sum(history[-4:]) / 4 < history[0] and out["logit_real"] > out["logit_fake"]  # a mean: one step is noisy


def test_teacher_samples_are_cached_per_prompt_and_view(embedded_teacher, tmp_path, monkeypatch):
    pool = RealPool(embedded_teacher, size=3, steps=2, cache_dir=tmp_path)
    side = pool.images("a vase, side view")
    pool.images("a vase, front view")
    assert side.shape == (3, 3, 32, 32) and 0 <= side.min() and side.max() <= 1
    assert len(list(tmp_path.glob("*.pt"))) == 2
    again = RealPool(embedded_teacher, size=3, steps=2, cache_dir=tmp_path)
    monkeypatch.setattr(again, "generate", lambda prompt: pytest.fail("regenerated a cached pool"))
    assert torch.equal(again.images("a vase, side view"), side)
    batch = again.sample(["a vase, side view", "a vase, front view"])
    assert batch.shape == (2, 3, 32, 32)


def test_user_folder_per_view_bucket(embedded_teacher, tmp_path):
    (tmp_path / "side").mkdir()
    Image.new("RGB", (48, 40), (255, 0, 0)).save(tmp_path / "side" / "a.png")
    for i in range(2):
        Image.new("RGB", (20, 20), (0, 0, 255)).save(tmp_path / f"{i}.jpg")
    pool = RealPool(embedded_teacher, images_dir=str(tmp_path), cache_dir=tmp_path / "unused")
    side, front = pool.images("a vase, side view"), pool.images("a vase, front view")
    assert side.shape == (1, 3, 32, 32) and torch.allclose(side[0, 0], torch.ones(32, 32))
    assert front.shape == (2, 3, 32, 32) and torch.allclose(front[:, 2], torch.ones(2, 32, 32), atol=1e-2)
    assert not (tmp_path / "unused").exists()


def test_rkl_warm_start_switches_to_the_configured_divergence(embedded_teacher, cache_dir):
    """The loss the guidance puts on a render is rkl's before the switch and fkl's from it on (r ≠ 1, so the two
    weights h(r) = 1 and h(r) = r differ)."""
    from tests.guidance.helpers import make_guidance
    from ui3d.distill import losses

    options = dict(normalize_ratio=False, detach_ratio=True, lambda_gan=0.0)  # the loss is the divergence's alone
    guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir, divergence="fkl", rkl_warm_start_steps=5,
                             **options)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 3, 32, 32, generator=g, dtype=torch.float64, requires_grad=True)
    noised = guidance.noise(x0, torch.tensor([300]))
    d_q, d_p = torch.tanh(noised.x_t), 0.5 * torch.tanh(noised.x_t)
    logit = torch.tensor([0.7], dtype=torch.float64)

    def loss_at(step: int) -> torch.Tensor:
        guidance.update_step(step)
        return guidance.generator_loss(noised, d_q, d_p, logit=logit)["loss"]

    def direct(divergence: str) -> torch.Tensor:
        out, _ = losses.uniinstruct(x0, noised.x_t, noised.alpha_t, noised.sigma_t, d_q, d_p, logit=logit,
                                    divergence=divergence, detach_ratio=True, ratio_gradient=guidance.cfg.ratio_gradient,
                                    logit_clamp=guidance.cfg.logit_clamp, form=guidance.cfg.form)
        return out

    before, after = loss_at(4), loss_at(5)
    ratio = before / direct("rkl")  # one sample: the same per-time weight multiplies both
    torch.testing.assert_close(after / direct("fkl"), ratio)
    assert not torch.isclose(before, after)
    plain = make_guidance("uniinstruct", embedded_teacher, cache_dir, divergence="fkl", **options)
    plain.update_step(0)
    torch.testing.assert_close(plain.generator_loss(noised, d_q, d_p, logit=logit)["loss"], after)


def test_input_gradient_weight_scales_only_the_gradient_through_the_networks(embedded_teacher, cache_dir):
    """input_gradient 0 leaves the direct term −2h δ (the loss value is unchanged); 1 is the exact loss; in
    between, the network-input part of the gradient scales linearly."""
    from ui3d.guidance.uniinstruct import scale_gradient

    x = torch.randn(3, requires_grad=True)
    (g,) = torch.autograd.grad((scale_gradient(x, 0.25) ** 2).sum(), x)
    torch.testing.assert_close(g, 0.25 * 2 * x.detach())
    embeds = prompt_embeds(embedded_teacher)
    grads = {}
    for weight in (0.0, 0.5, 1.0):
        guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir, divergence="rkl", detach_ratio=True,
                                 input_gradient=weight, weighting="uniform")
        torch.manual_seed(0)
        rgb = torch.rand(2, 32, 32, 3, requires_grad=True)
        out = guidance(rgb, embeds, cameras(), global_step=0)
        grads[weight] = (torch.autograd.grad(out["loss_uniinstruct"], rgb)[0], out["loss_uniinstruct"].detach())
    torch.testing.assert_close(grads[0.0][1], grads[1.0][1])  # same value
    torch.testing.assert_close(grads[0.5][0], 0.5 * (grads[0.0][0] + grads[1.0][0]), rtol=1e-4, atol=1e-6)
    assert (grads[1.0][0] - grads[0.0][0]).norm() > 0.1 * grads[0.0][0].norm()


def test_input_gradient_follows_its_step_schedule(embedded_teacher, cache_dir, monkeypatch):
    import ui3d.guidance.uniinstruct as module

    seen = []
    real = module.scale_gradient
    monkeypatch.setattr(module, "scale_gradient", lambda x, w: seen.append(w) or real(x, w))
    guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir, input_gradient=[10, 0.0, 1.0, 20])
    embeds, rgb = prompt_embeds(embedded_teacher), torch.rand(2, 32, 32, 3)
    for step in (0, 15, 30):
        guidance(rgb, embeds, cameras(), global_step=step)
    assert seen == [0.0, 0.5, 1.0]


def test_gan_term_moves_the_render_at_input_gradient_zero(embedded_teacher, cache_dir):
    """`input_gradient` weighs the Uni-Instruct loss's gradient through the networks' inputs; the GAN term's
    gradient (through the discriminator's features of the render) is the GAN's own and stays whole: scaling x_t
    itself had silenced it at input_gradient 0. Same noise and cameras, lambda_gan 0 against 1."""
    embeds = prompt_embeds(embedded_teacher)
    grads = {}
    for lambda_gan in (0.0, 1.0):
        guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir, lambda_gan=lambda_gan, input_gradient=0.0,
                                 detach_ratio=True, ratio_gradient="none", weighting="uniform")
        torch.manual_seed(3)
        for p in guidance.head.parameters():  # a head that has learnt something (a fresh one is constant)
            p.data.normal_(0.0, 0.5)
        torch.manual_seed(0)
        rgb = torch.rand(2, 32, 32, 3, requires_grad=True)
        out = guidance(rgb, embeds, cameras(), global_step=0)
        grads[lambda_gan] = torch.autograd.grad(out["loss_uniinstruct"], rgb)[0]
    assert (grads[1.0] - grads[0.0]).norm() > 1e-2  # exactly 0 when x_t's gradient was scaled


def test_guidance_state_holds_the_running_ratio_statistics(embedded_teacher, cache_dir):
    kw = dict(divergence="fkl", detach_ratio=True, ratio_gradient="none", normalize_ratio=True,
              rkl_warm_start_steps=1)
    guidance = make_guidance("uniinstruct", embedded_teacher, cache_dir, **kw)
    embeds = prompt_embeds(embedded_teacher)
    for step in range(3):
        guidance(torch.rand(2, 32, 32, 3), embeds, cameras(), global_step=step)
    state = guidance.state_dict()
    assert {"objective.r_sum", "warm_objective.r_sum", "disc.net.0.weight"} <= set(state)
    assert float(state["objective.r_weight"].sum()) > 0
    fresh = make_guidance("uniinstruct", embedded_teacher, cache_dir, **kw)
    fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, state[key], msg=key)


def test_every_objective_setting_is_a_flat_guidance_key_that_reaches_the_objective(embedded_teacher, cache_dir):
    """`system.guidance.table5`, `ratio_clip`, … (every `ObjectiveConfig` field, none of them at its default)."""
    settings = {"divergence": "rkl", "form": "paper", "detach_ratio": True, "ratio_gradient": "none", "table5": True,
                "sid_alpha": 1.0, "weighting": "exact", "lambda_gan": 0.3, "logit_clamp": 5.0, "normalize_ratio": True,
                "ratio_momentum": 0.5, "n_time_bins": 4, "ratio_clip": [0.2, 5.0]}
    assert set(settings) == {f.name for f in dataclasses.fields(ObjectiveConfig)}
    guidance = build("uniinstruct", {**settings, "real_pool_size": 2, "real_sampling_steps": 2,
                                     "real_pool_cache_dir": str(cache_dir)}, embedded_teacher)
    assert {name: getattr(guidance.objective.cfg, name) for name in settings} == settings
    assert guidance.objective.cfg.method == "uniinstruct"
