"""The loss family recovers the methods it unifies (DESIGN §3.3), on random tensors shaped like images."""
import pytest
import torch

from ui3d.distill import losses


def batch(seed=0, b=4, shape=(3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(b, *shape, generator=g, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(b, generator=g, dtype=torch.float64) * 0.8 + 0.1
    sigma = (1 - alpha**2).sqrt()
    eps = torch.randn(b, *shape, generator=g, dtype=torch.float64)
    x_t = alpha[:, None, None, None] * x0 + sigma[:, None, None, None] * eps
    # denoisers "evaluated at x_t": smooth functions of x_t so gradients flow through the networks' inputs
    w_q, w_p = (torch.randn(*shape, generator=g, dtype=torch.float64) * 0.3 for _ in range(2))
    d_teacher, d_fake = torch.tanh(x_t + w_q), 0.8 * torch.tanh(x_t - w_p)
    logit = (x_t**2).flatten(1).mean(1) - 1.0 + torch.randn(b, generator=g, dtype=torch.float64) * 0.1
    return dict(x0=x0, x_t=x_t, alpha_t=alpha, sigma_t=sigma, d_teacher=d_teacher, d_fake=d_fake, logit=logit)


def grad_of(loss_fn, inputs, **options):
    loss, _ = loss_fn(**inputs, **options)
    (grad,) = torch.autograd.grad(loss, inputs["x0"], retain_graph=True)
    return loss.detach(), grad


def test_uniinstruct_rkl_is_sid_with_alpha_half():
    """h ≡ 1: ‖δ‖² − 2δ·(c − s_p) = 2 × SiD(α = ½), in value and in gradient."""
    inputs = batch()
    norm = 1 / (inputs["x0"] - inputs["d_teacher"]).abs().flatten(1).mean(1).detach()
    for form in ("exact",):
        ui = grad_of(losses.uniinstruct, inputs, divergence="rkl", form=form, weight=norm)
        sid = grad_of(losses.sid, inputs, alpha=0.5, weight=norm)
        torch.testing.assert_close(ui[0], 2 * sid[0])
        torch.testing.assert_close(ui[1], 2 * sid[1])


@pytest.mark.parametrize("name", ["fkl", "js"])
def test_f_distill_normalised_weights_each_sample_as_the_paper_says(name):
    """f-distill's two-stage normalisation, computed here from its definition: r over the mean r of its time bin
    (clipped to [0.1, 20]), then h(r̃) over the batch mean of h(r̃), times DMD's per-sample gradient."""
    from ui3d import divergences

    inputs = batch(1, b=6)
    t = torch.tensor([0.05, 0.07, 0.31, 0.35, 0.38, 0.92], dtype=torch.float64)
    _, g_f = grad_of(losses.f_distill, inputs, divergence=name, t=t, n_time_bins=10, ratio_clip=(0.1, 20.0))
    _, g_d = grad_of(losses.dmd, inputs)
    r = inputs["logit"].detach().exp()
    bins = (t * 10).long()
    r_tilde = torch.stack([r[i] / r[bins == bins[i]].mean() for i in range(len(r))]).clamp(0.1, 20.0)
    h = divergences.get(name).h(r_tilde)
    expected = (h / h.mean())[:, None, None, None] * g_d
    torch.testing.assert_close(g_f, expected)
    assert not torch.allclose(g_f, g_d)  # the weights are not all one


def test_f_distill_weights_the_dmd_gradient_by_h_of_r():
    inputs = batch(2)
    _, g_f = grad_of(losses.f_distill, inputs, divergence="fkl", normalize=False)
    _, g_d = grad_of(losses.dmd, inputs)
    r = torch.exp(inputs["logit"])
    torch.testing.assert_close(g_f, r[:, None, None, None] * g_d)


def test_paper_form_is_a_pure_di_term_for_chi2_and_a_pure_sim_term_for_the_kl_family():
    """χ² has C1 ≡ 0, so its paper loss is the DI-type term x_t·SG(C2‖δ‖²δ) alone: cubic in δ, and blind to the
    networks' input gradients (everything but x_t is stopped). The KL family has C2 ≡ 0, so theirs is the SIM
    term C1 δ·(c − s_p) alone: linear in δ, with gradients through the networks' inputs."""
    inputs = batch(3)

    def paper_grad(name: str, k: float = 1.0, cut_networks: bool = False):
        d_fake = inputs["d_fake"].detach() if cut_networks else inputs["d_fake"]
        d_teacher = inputs["d_teacher"].detach() if cut_networks else inputs["d_teacher"]
        scaled = {**inputs, "d_fake": d_fake, "d_teacher": d_fake + k * (d_teacher - d_fake)}  # δ → kδ
        return grad_of(losses.uniinstruct, scaled, divergence=name, form="paper")[1]

    chi2 = paper_grad("chi2")
    assert chi2.abs().max() > 0
    torch.testing.assert_close(paper_grad("chi2", k=2.0), 8 * chi2)
    torch.testing.assert_close(paper_grad("chi2", cut_networks=True), chi2)
    for name in ("fkl", "rkl", "jkl"):
        sim = paper_grad(name)
        torch.testing.assert_close(paper_grad(name, k=2.0), 2 * sim)
        assert (paper_grad(name, cut_networks=True) - sim).norm() > 0.1 * sim.norm()


def test_exact_form_gradient_flows_through_the_ratio_unless_detached():
    inputs = batch(4)
    logit = inputs["logit"].detach().requires_grad_(True)
    loss, _ = losses.uniinstruct(**{**inputs, "logit": logit}, divergence="js")
    assert torch.autograd.grad(loss, logit, retain_graph=True)[0].abs().sum() > 0
    loss, _ = losses.uniinstruct(**{**inputs, "logit": logit}, divergence="js", detach_ratio=True)
    assert torch.autograd.grad(loss, logit, retain_graph=True, allow_unused=True)[0] is None


@pytest.mark.parametrize("method", ["sds", "vsd", "dmd"])
def test_detached_target_losses_put_exactly_their_gradient_on_x0(method):
    inputs = batch(5)
    a, s = inputs["alpha_t"][:, None, None, None], inputs["sigma_t"][:, None, None, None]
    expected = {
        "sds": a * (inputs["x0"] - inputs["d_teacher"]) / s,  # = eps_q − eps
        "vsd": a * (inputs["d_fake"] - inputs["d_teacher"]) / s,  # = eps_q − eps_p
        "dmd": inputs["d_fake"] - inputs["d_teacher"],
    }[method]
    _, grad = grad_of(losses.GENERATOR_LOSSES[method], inputs)
    torch.testing.assert_close(grad, expected.detach() / 4)  # mean over a batch of 4


def test_sds_eps_units_match_the_noise_residual():
    inputs = batch(6)
    eps = (inputs["x_t"] - inputs["alpha_t"][:, None, None, None] * inputs["x0"]) / inputs["sigma_t"][:, None, None, None]
    eps_q = (inputs["x_t"] - inputs["alpha_t"][:, None, None, None] * inputs["d_teacher"]) / inputs["sigma_t"][:, None, None, None]
    _, grad = grad_of(losses.sds, inputs)
    torch.testing.assert_close(grad, (eps_q - eps).detach() / 4)


def test_normalize_ratio_makes_each_time_bin_mean_one():
    r = torch.tensor([1.0, 3.0, 10.0, 30.0, 2.0], dtype=torch.float64)
    t = torch.tensor([0.05, 0.08, 0.55, 0.51, 0.99], dtype=torch.float64)
    out, clipped = losses.RatioNormalizer(n_bins=10, clip=None).ratio(r, t)
    torch.testing.assert_close(out, torch.tensor([0.5, 1.5, 0.5, 1.5, 1.0], dtype=torch.float64))
    assert not clipped.any()


def test_gan_losses():
    logit = torch.tensor([0.0, 2.0])
    d_loss, _ = losses.gan_discriminator(logit, -logit)
    assert torch.isclose(d_loss, 2 * torch.nn.functional.softplus(-logit).mean())
    g_loss, _ = losses.gan_generator(logit)
    assert torch.isclose(g_loss, torch.nn.functional.softplus(-logit).mean())


def test_gan_discriminator_optimum_is_log_ratio():
    """Minimising `gan_discriminator` over a free logit per point, with real samples drawn from q and fake ones
    from p (each point repeated in proportion to its mass), gives logit = log(q/p) (Theorem A.1)."""
    q, p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64), torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    real = torch.repeat_interleave(torch.arange(3), (q * 10).round().long())
    fake = torch.repeat_interleave(torch.arange(3), (p * 10).round().long())
    logit = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logit], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss, _ = losses.gan_discriminator(logit[real], logit[fake])
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(logit.detach(), (q / p).log(), atol=1e-6, rtol=1e-6)


def test_dsm_trains_a_network_to_the_posterior_mean():
    """Data x0 = ±1 (equally likely), x_t = αx0 + σε: minimising `dsm` over a small network D(x_t) gives
    E[x0 | x_t] = tanh(α x_t / σ²), the denoiser every score in the family assumes; and the loss does not train x0."""
    alpha, sigma = 0.6, 0.8
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(2000):
        if step == 1200:
            opt.param_groups[0]["lr"] = 1e-3  # settle the Monte-Carlo noise
        x0 = (torch.randint(0, 2, (1024, 1), generator=g) * 2 - 1).double()
        x_t = alpha * x0 + sigma * torch.randn(1024, 1, generator=g, dtype=torch.float64)
        loss, _ = losses.dsm(net(x_t), x0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(net(grid), torch.tanh(alpha * grid / sigma**2), atol=0.05, rtol=0)
    x0 = torch.randn(2, 3, requires_grad=True)
    d = torch.zeros(2, 3, requires_grad=True)
    loss, _ = losses.dsm(d, x0)
    grad_d, grad_x0 = torch.autograd.grad(loss, (d, x0), allow_unused=True)
    assert grad_x0 is None and grad_d.abs().sum() > 0
