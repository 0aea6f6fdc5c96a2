"""Sign test: with an analytic teacher whose denoiser is a known image, one optimizer step of each guidance moves
a free render toward that image (DreamFusion's mode seeking, ProlificDreamer's and Uni-Instruct's score
difference). The fake score is the exact one of a point-mass student at the current render: D_p = x_0."""
import pytest
import torch

from tests.guidance.helpers import analytic_teacher, cameras, make_guidance, prompt_embeds, to_x0


@pytest.mark.parametrize("name", ["sds", "vsd", "uniinstruct"])
def test_one_step_moves_the_render_toward_the_teachers_target(name, tmp_path):
    teacher, unet = analytic_teacher()
    target = torch.rand(1, 32, 32, 3)
    rgb = torch.rand(1, 32, 32, 3, requires_grad=True)
    unet.target, unet.fake_target = to_x0(target), to_x0(rgb.detach())
    guidance = make_guidance(name, teacher, tmp_path)
    out = guidance(rgb, prompt_embeds(teacher, ["a red vase, side view"]), cameras(1), global_step=0)
    total = sum(v for k, v in out.items() if k.startswith("loss_") and v.requires_grad)  # as the system sums
    optimizer = torch.optim.Adam([rgb], lr=1e-2)
    total.backward()
    toward = (target - rgb.detach()).flatten()
    cosine = torch.dot(-rgb.grad.flatten(), toward) / (rgb.grad.norm() * toward.norm())
    assert cosine > 0.99, f"{name}: the gradient does not point at the target (cosine {cosine:.3f})"
    before = (rgb.detach() - target).norm()
    optimizer.step()
    assert (rgb.detach() - target).norm() < before - 0.05


@pytest.mark.parametrize("name, h", [("fkl", lambda r: r), ("chi2", lambda r: 2 * r**2), ("js", lambda r: r / (r + 1))])
def test_the_ratio_weights_the_render_gradient_by_h_of_r(name, h, tmp_path):
    """With the discriminator saying r = e^0.8 (not 1) and a fake score that is neither the teacher nor the render,
    the shipped form (r a frozen weight) puts h(r) × reverse KL's gradient on the render."""
    import math

    teacher, unet = analytic_teacher()
    g = torch.Generator().manual_seed(1)
    target, fake, rgb0 = (torch.rand(1, 32, 32, 3, generator=g) for _ in range(3))
    unet.target, unet.fake_target = to_x0(target), to_x0(fake)
    embeds = prompt_embeds(teacher, ["a red vase, side view"])
    grads = {}
    for divergence in ("rkl", name):
        guidance = make_guidance("uniinstruct", teacher, tmp_path, divergence=divergence, normalize_ratio=False,
                                 detach_ratio=True, ratio_gradient="none", lambda_gan=0.0, rkl_warm_start_steps=0)
        with torch.no_grad():
            guidance.head.net[2].bias.fill_(0.8)  # logit 0.8 whatever the features: r = e^0.8
        torch.manual_seed(0)  # the same t and noise for both divergences
        rgb = rgb0.clone().requires_grad_(True)
        out = guidance(rgb, embeds, cameras(1), global_step=0)
        assert torch.isclose(out["r"].float(), torch.tensor(math.exp(0.8)))
        out["loss_uniinstruct"].backward()
        grads[divergence] = rgb.grad
    assert grads["rkl"].abs().sum() > 0
    expected = h(math.exp(0.8)) * grads["rkl"]
    torch.testing.assert_close(grads[name], expected, rtol=1e-3, atol=1e-4 * expected.abs().max().item())  # float32
