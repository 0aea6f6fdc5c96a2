"""One denoiser convention: eps-, v- and x0-predictions convert to D and back; schedules give alpha_t, sigma_t."""
import pytest
import torch

from ui3d.diffusion import denoiser
from ui3d.diffusion.schedules import EDM, VPContinuous, VPDiscrete


@pytest.mark.parametrize("prediction_type", denoiser.PREDICTION_TYPES)
def test_prediction_types_recover_x0_from_the_true_target(prediction_type):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g)
    alpha, sigma = VPDiscrete.scaled_linear().alpha_sigma(torch.tensor([10, 500, 990]))
    x_t = denoiser.expand_like(alpha, x0) * x0 + denoiser.expand_like(sigma, x0) * eps
    a, s = denoiser.expand_like(alpha, x0), denoiser.expand_like(sigma, x0)
    target = {"epsilon": eps, "v_prediction": a * eps - s * x0, "sample": x0}[prediction_type]
    torch.testing.assert_close(denoiser.to_denoised(target, x_t, alpha, sigma, prediction_type), x0, atol=1e-4, rtol=1e-4)
    back = denoiser.from_denoised(x0, x_t, alpha, sigma, prediction_type)
    torch.testing.assert_close(back, target, atol=1e-3, rtol=1e-3)


def test_unknown_prediction_type_is_named():
    with pytest.raises(ValueError, match="unknown prediction_type 'eps'"):
        denoiser.to_denoised(torch.zeros(1, 1), torch.zeros(1, 1), 1.0, 1.0, "eps")


def test_score_of_the_optimal_denoiser_is_the_marginal_score():
    """For x0 ~ N(0, 1): p_t = N(0, alpha² + sigma²), D* = alpha x_t / (alpha² + sigma²)."""
    x_t = torch.linspace(-3, 3, 7)[:, None]
    alpha, sigma = 0.6, 0.8
    d = alpha * x_t / (alpha**2 + sigma**2)
    torch.testing.assert_close(denoiser.score(d, x_t, alpha, sigma), -x_t / (alpha**2 + sigma**2))


def test_cfg_combines_on_the_teacher():
    cond, uncond = torch.ones(2), torch.zeros(2)
    assert torch.equal(denoiser.classifier_free_guidance(cond, uncond, 7.5), torch.full((2,), 7.5))
    assert torch.equal(denoiser.classifier_free_guidance(cond, uncond, 1.0), cond)


def test_edm_preconditioning_is_identity_skip_at_zero_noise():
    c_skip, c_out, c_in, c_noise = denoiser.edm_preconditioning(torch.tensor([1e-8, 0.5, 80.0]))
    assert torch.isclose(c_skip[0], torch.tensor(1.0)) and c_out[0] < 1e-7
    torch.testing.assert_close(c_skip[1], torch.tensor(0.5))
    # unit variance of the network input for data of std sigma_data
    torch.testing.assert_close(c_in**2 * (0.25 + torch.tensor([1e-8, 0.5, 80.0]) ** 2), torch.ones(3))


def test_vp_discrete_matches_diffusers_ddpm():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    ours, theirs = VPDiscrete.scaled_linear(), VPDiscrete.from_scheduler(sched)
    t = torch.tensor([0, 1, 499, 999])
    torch.testing.assert_close(ours.alpha_sigma(t), theirs.alpha_sigma(t))
    alpha, sigma = ours.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(4))
    torch.testing.assert_close(ours.g2(t), sched.betas[t].float())
    ts = ours.sample_t(1000, 0.02, 0.98, generator=torch.Generator().manual_seed(0))
    assert ts.min() >= 20 and ts.max() < 980


def test_vp_continuous_g2_is_the_derivative_of_the_noise():
    """For VP, d(sigma²/alpha²)/dt = g² / alpha² (the SNR form of the diffusion coefficient)."""
    vp = VPContinuous()
    t = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64, requires_grad=True)
    alpha, sigma = vp.alpha_sigma(t)
    (d,) = torch.autograd.grad((sigma**2 / alpha**2).sum(), t)
    torch.testing.assert_close(d, (vp.g2(t) / alpha**2).detach())


def test_edm_schedule():
    edm = EDM()
    t = torch.tensor([0.1, 2.0])
    assert torch.equal(edm.alpha_sigma(t)[1], t) and torch.equal(edm.g2(t), 2 * t)
    sigmas = edm.karras_sigmas(18)
    assert sigmas[0] == pytest.approx(80.0) and sigmas[-2] == pytest.approx(0.002) and sigmas[-1] == 0
    s = edm.sample_t(500, 0.0, 1.0, generator=torch.Generator().manual_seed(0))
    assert s.min() >= 0.002 and s.max() <= 80.0
