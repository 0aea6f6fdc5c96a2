"""The 2D recipes train what their papers train: Diff-Instruct's time weight, f-distill's GAN term, and DMD2/SiDA's
discriminator on the fake score's encoder (its BCE trains that encoder; the generator's GAN term does not)."""
import lightning as L
import pytest
import torch

from tests.tiny_models import build_tiny_unet_folder
from ui3d.config import CONFIG_DIR, load_config, parse_structured
from ui3d.distill.objective import DistillObjective
from ui3d.diffusion.schedules import VPDiscrete
from ui3d.distill2d.teachers import cosine_scheduler
from ui3d.systems.distill2d import Distill2DConfig, Distill2DSystem


def recipe_objective(name: str) -> tuple[DistillObjective, Distill2DConfig]:
    system = parse_structured(Distill2DConfig, load_config(f"distill2d/{name}").cfg.system)
    return DistillObjective(parse_structured(DistillObjective.Config, system.loss)), system


def test_diff_instruct_recipe_weighs_every_t_as_diff_instruct_does():
    """Diff-Instruct's generator gradient (its code: weight 1 on (D_p − D_q)·x0) is D_p − D_q at every t: the
    recipe's gradient on x0 over that difference is one constant from t = 20 to 980 (the schedule's α²/σ² spans
    10⁵ over that range), whatever the sample's distance to the teacher."""
    objective, _ = recipe_objective("diff-instruct.yaml")
    t = torch.arange(20, 981, 40)
    alpha, sigma = (a.double() for a in VPDiscrete.from_scheduler(cosine_scheduler()).alpha_sigma(t))
    g = torch.Generator().manual_seed(0)

    def noise(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=g)

    x0 = noise(len(t), 1, 4, 4).requires_grad_()
    d_teacher = x0.detach() + noise(x0.shape) * noise(len(t), 1, 1, 1).exp()  # samples near and far from D_q
    d_fake = d_teacher + noise(x0.shape)
    x_t = alpha.view(-1, 1, 1, 1) * x0 + sigma.view(-1, 1, 1, 1) * noise(x0.shape)
    out = objective(x0, x_t, alpha, sigma, d_teacher, d_fake, logit=torch.zeros(len(t), dtype=torch.float64))
    (grad,) = torch.autograd.grad(out["loss"], x0)
    per_t = grad / (d_fake - d_teacher)  # the weight the recipe gives each sample's D_p − D_q
    torch.testing.assert_close(per_t, torch.full_like(per_t, float(per_t.mean())), rtol=1e-9, atol=0)


@pytest.mark.parametrize("recipe", sorted(p.name for p in (CONFIG_DIR / "distill2d").glob("f-distill-*.yaml")))
def test_f_distill_recipes_train_with_their_gan_term(recipe):
    objective, system = recipe_objective(recipe)
    assert objective.cfg.method == "f-distill" and objective.cfg.lambda_gan > 0
    assert objective.needs_ratio and system.discriminator in ("teacher", "fake")  # a head that trains


def one_step(folder, root, lambda_fake_gan: float, lambda_gan: float) -> dict[str, torch.Tensor]:
    """The fake score's gradients after one training step of DMD2's loop (discriminator: fake), by parameter: those
    of its second critic update (the head's output layer starts at zero, so the first passes no BCE gradient on)."""
    torch.manual_seed(0)
    cfg = Distill2DConfig(
        teacher_type="unet-teacher", batch_size=4, discriminator="fake", fake_steps_per_generator=2,
        lambda_fake_gan=lambda_fake_gan,
        teacher={"pretrained_model_name_or_path": str(folder), "real_pool": 8, "real_steps": 2},
        loss={"method": "dmd", "lambda_gan": lambda_gan})
    system = Distill2DSystem(cfg, root)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0)
    trainer.fit(system)
    return {n: p.grad.clone() for n, p in system.fake.named_parameters()}


def test_fake_discriminator_trains_the_fake_scores_encoder(tmp_path):
    """DMD2/SiDA: the head reads the fake score's encoder and its BCE joins the fake score's DSM update, so the
    encoder's gradient changes with `lambda_fake_gan` and the decoder's (DSM alone) does not; the generator's GAN
    term leaves the fake score's gradients as the fake-score update left them."""
    folder = build_tiny_unet_folder(tmp_path / "teacher")
    runs = [(1.0, 0.5), (0.0, 0.5), (1.0, 5.0)]  # (lambda_fake_gan, the generator's lambda_gan)
    gan, dsm_only, more_generator_gan = (one_step(folder, tmp_path / f"run{i}", *run) for i, run in enumerate(runs))
    encoder = [n for n in gan if n.startswith(("unet.conv_in", "unet.down_blocks", "unet.mid_block"))]
    decoder = [n for n in gan if n.startswith(("unet.up_blocks", "unet.conv_out"))]
    assert encoder and decoder
    assert max(float((gan[n] - dsm_only[n]).abs().max()) for n in encoder) > 1e-6
    assert all(torch.equal(gan[n], dsm_only[n]) for n in decoder)
    assert all(torch.equal(gan[n], more_generator_gan[n]) for n in gan)
