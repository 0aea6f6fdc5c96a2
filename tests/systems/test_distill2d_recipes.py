"""The 2D recipes train what their papers train: Diff-Instruct's time weight, f-distill's GAN term."""
import pytest
import torch

from ui3d.config import CONFIG_DIR, load_config, parse_structured
from ui3d.distill.objective import DistillObjective
from ui3d.distill2d.teachers import cosine_schedule
from ui3d.systems.distill2d import Distill2DConfig


def recipe_objective(name: str) -> tuple[DistillObjective, Distill2DConfig]:
    system = parse_structured(Distill2DConfig, load_config(f"distill2d/{name}").cfg.system)
    return DistillObjective(parse_structured(DistillObjective.Config, system.loss)), system


def test_diff_instruct_recipe_weighs_every_t_as_diff_instruct_does():
    """Diff-Instruct's generator gradient (its code: weight 1 on (D_p − D_q)·x0) is D_p − D_q at every t: the
    recipe's gradient on x0 over that difference is one constant from t = 20 to 980 (the schedule's α²/σ² spans
    10⁵ over that range), whatever the sample's distance to the teacher."""
    objective, _ = recipe_objective("diff-instruct.yaml")
    t = torch.arange(20, 981, 40)
    alpha, sigma = (a.double() for a in cosine_schedule().alpha_sigma(t))
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
