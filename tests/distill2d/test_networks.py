"""The 2D networks: the one-step generator reads its network at sigma/alpha = sigma_init, the fitted MLP of the
mixture teacher is close to the exact denoiser (or, with `init_modes`, puts the generator on those modes alone),
and the discriminator starts at r = 1."""
import torch
from omegaconf import OmegaConf

from ui3d.config import CONFIG_DIR, parse_structured
from ui3d.distill2d.networks import MLPDiscriminator, OneStepGenerator
from ui3d.distill2d.teachers import MixtureTeacher
from ui3d.metrics.mixture import mode_mass


def test_generator_evaluates_its_network_at_sigma_init():
    teacher = MixtureTeacher(MixtureTeacher.Config(fit_steps=20, hidden=16))
    gen = OneStepGenerator(teacher.network(), sigma_init=2.5)
    ac = teacher.schedule.alphas_cumprod[int(gen.t_star)]
    assert abs(float(((1 - ac) / ac).sqrt()) - 2.5) < 0.05
    assert gen(torch.randn(5, 2)).shape == (5, 2)


def test_fitted_network_approximates_the_exact_denoiser():
    teacher = MixtureTeacher(MixtureTeacher.Config(fit_steps=400, hidden=64))
    net, g = teacher.network(), torch.Generator().manual_seed(0)
    x0 = teacher.real(2000, g)[0]
    t = torch.randint(200, 900, (2000,), generator=g)
    alpha, sigma = teacher.schedule.alpha_sigma(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        exact, fitted = teacher.net(x_t, t), net(x_t, t)
    spread = ((x0 - exact) ** 2).sum(1).mean()  # the error of the exact denoiser itself
    assert ((fitted - exact) ** 2).sum(1).mean() < 0.25 * spread


def test_discriminator_starts_with_ratio_one():
    disc = MLPDiscriminator(2, 1000)
    assert torch.equal(disc(torch.randn(4, 2), torch.tensor([1, 10, 100, 999])), torch.zeros(4))


def test_dropped_mode_mixture_starts_the_generator_on_the_heavy_mode():
    """mixture-dropped.yaml (50:1, init_modes [0]): the initial generator's samples lie on the heavy mode (all but
    one in 2000 at this short fit); fitted to the whole mixture, it puts a third of them between the modes."""
    block = OmegaConf.load(CONFIG_DIR / "distill2d" / "mixture-dropped.yaml").system.teacher  # its whole block
    teacher = MixtureTeacher(parse_structured(MixtureTeacher.Config, {**block, "fit_steps": 300, "hidden": 64}))
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    generator = OneStepGenerator(teacher.network(), sigma_init=2.5)
    with torch.no_grad():
        x = generator(z).double()
    heavy, light = mode_mass(x, teacher.mixture).tolist()
    assert teacher.mixture.weights.argmax() == 0 and heavy > 0.99 and light == 0
