"""The ratio in Uni-Instruct and f-distill: the weight-only form, the two-stage normalisation with running means
(a 3D guidance sees one view per step), and its state in checkpoints."""
import pytest
import torch

from tests.distill.test_special_cases import batch, grad_of
from ui3d import divergences
from ui3d.distill import losses
from ui3d.distill.objective import DistillObjective


@pytest.mark.parametrize("name", ["fkl", "jkl", "js", "chi2"])
def test_weight_only_form_is_h_times_the_rkl_loss(name):
    """ratio_gradient="none": r is a frozen weight, L = h(r) [‖δ‖² − 2δ·(c − s_p)], per sample."""
    inputs = batch(11)
    r = torch.exp(inputs["logit"].detach())
    h = divergences.get(name).h(r)
    weighted = grad_of(losses.uniinstruct, inputs, divergence=name, detach_ratio=True, ratio_gradient="none")
    rkl = grad_of(losses.uniinstruct, inputs, divergence="rkl", weight=h)
    torch.testing.assert_close(weighted, rkl)


def test_weight_only_form_drops_the_ratio_terms_of_the_exact_form():
    """fkl's exact form (h − rh' = 0) differs from the weight-only one by −rh'‖δ‖² and the DI term."""
    inputs = batch(12)
    exact = grad_of(losses.uniinstruct, inputs, divergence="fkl", detach_ratio=True, ratio_gradient="di")
    weighted = grad_of(losses.uniinstruct, inputs, divergence="fkl", detach_ratio=True, ratio_gradient="none")
    assert (exact[1] - weighted[1]).norm() > 0.1 * weighted[1].norm()
    same = grad_of(losses.uniinstruct, inputs, divergence="rkl", detach_ratio=True, ratio_gradient="none")
    torch.testing.assert_close(same, grad_of(losses.uniinstruct, inputs, divergence="rkl", detach_ratio=True))


def test_unknown_ratio_gradient_is_named():
    with pytest.raises(ValueError, match="unknown ratio_gradient 'dii'"):
        losses.uniinstruct(**batch(13), ratio_gradient="dii")
    with pytest.raises(ValueError, match="unknown ratio_gradient 'dii'"):
        DistillObjective(DistillObjective.Config(ratio_gradient="dii"))


def test_running_normalizer_divides_by_a_bias_corrected_running_mean_per_bin():
    norm = losses.RatioNormalizer(n_bins=2, clip=None, momentum=0.5)
    t_low, t_high = torch.tensor([0.1]), torch.tensor([0.9])
    first, _ = norm.ratio(torch.tensor([4.0]), t_low)
    assert float(first) == pytest.approx(1.0)  # the first sample of a bin is its own mean
    second, _ = norm.ratio(torch.tensor([2.0]), t_low)
    assert float(second) == pytest.approx(0.75)  # mean (0.25·4 + 0.5·2)/0.75 = 8/3
    other, _ = norm.ratio(torch.tensor([10.0]), t_high)
    assert float(other) == pytest.approx(1.0)  # bins keep their own means
    assert float(norm.weight_mean(torch.tensor([2.0, 4.0]))) == pytest.approx(3.0)
    assert float(norm.weight_mean(torch.tensor([6.0]))) == pytest.approx((0.25 * 3 + 0.5 * 6) / 0.75)


def test_normalizer_clips_and_reports_what_it_clipped():
    norm = losses.RatioNormalizer(n_bins=1, clip=(0.5, 2.0))
    r, clipped = norm.ratio(torch.tensor([0.1, 1.0, 1.9, 5.0]), None)  # mean 2.0
    torch.testing.assert_close(r, torch.tensor([0.5, 0.5, 0.95, 2.0]))
    assert clipped.tolist() == [True, True, False, True]


def test_normalized_loss_keeps_its_scale_whatever_the_discriminator_says():
    """Stage 2 divides by the mean of h: scaling every r by 100 (a confident discriminator) leaves the
    normalised fkl loss unchanged, while the unnormalised one scales by 100."""
    inputs = batch(14)
    shifted = {**inputs, "logit": inputs["logit"] + torch.log(torch.tensor(100.0, dtype=torch.float64))}
    t = torch.rand(4, dtype=torch.float64)
    opts = dict(divergence="fkl", detach_ratio=True, ratio_gradient="none", t=t, logit_clamp=None)
    a = grad_of(losses.uniinstruct, inputs, normalizer=losses.RatioNormalizer(clip=None), **opts)
    b = grad_of(losses.uniinstruct, shifted, normalizer=losses.RatioNormalizer(clip=None), **opts)
    torch.testing.assert_close(a, b)
    raw = grad_of(losses.uniinstruct, inputs, **opts)
    raw_shifted = grad_of(losses.uniinstruct, shifted, **opts)
    torch.testing.assert_close(raw_shifted[0], 100 * raw[0])


def test_objective_keeps_running_statistics_in_its_state():
    cfg = DistillObjective.Config(method="uniinstruct", divergence="fkl", detach_ratio=True, ratio_gradient="none",
                                  normalize_ratio=True, ratio_momentum=0.9)
    objective = DistillObjective(cfg)
    inputs = batch(15)
    objective(**inputs, t=torch.full((4,), 0.35, dtype=torch.float64))
    state = objective.state_dict()
    assert float(state["r_weight"][3]) == pytest.approx(0.1) and float(state["r_weight"].sum()) == pytest.approx(0.1)
    restored = DistillObjective(cfg)
    restored.load_state_dict(state)
    t = torch.full((4,), 0.35, dtype=torch.float64)
    torch.testing.assert_close(objective(**inputs, t=t)["loss"], restored(**inputs, t=t)["loss"])
    assert DistillObjective(DistillObjective.Config(method="uniinstruct")).state_dict() == {}


def test_normalisation_defaults_on_for_f_distill_only():
    assert DistillObjective(DistillObjective.Config(method="f-distill")).normalizer is not None
    assert DistillObjective(DistillObjective.Config(method="uniinstruct")).normalizer is None
    on = DistillObjective.Config(method="uniinstruct", normalize_ratio=True)
    assert DistillObjective(on).normalizer is not None


@pytest.mark.parametrize("method", [losses.uniinstruct, losses.f_distill])
def test_the_spread_of_h_inside_a_batch_is_logged(method):
    """`h_sd` is the sd of the (normalised) per-sample weights of one batch: what weighs one view against another,
    which the batch mean `h` cannot show (batch normalisation fixes that mean at 1)."""
    inputs = batch(16)
    inputs["logit"] = torch.log(torch.tensor([0.5, 1.0, 1.5, 1.0], dtype=torch.float64))
    opts = dict(divergence="fkl", detach_ratio=True, ratio_gradient="none", logit_clamp=None)
    _, stats = method(**inputs, **opts, normalizer=losses.RatioNormalizer(n_bins=1, clip=None, momentum=0.0),
                      t=torch.full((4,), 0.5, dtype=torch.float64))
    assert float(stats["h"]) == pytest.approx(1.0)  # h = r for fkl, then r over its batch mean: mean 1
    assert float(stats["h_sd"]) == pytest.approx(torch.tensor([0.5, 1.0, 1.5, 1.0]).std(correction=0).item())
    _, rkl = method(**inputs, **{**opts, "divergence": "rkl"})
    assert float(rkl["h_sd"]) == 0.0  # rkl weighs every view alike
