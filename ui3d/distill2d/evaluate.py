"""End-of-run measurements of a 2D distillation system on an analytic mixture teacher.

The student's sample quality against the exact mixture (`ui3d.metrics.mixture.mixture_report`: MMD beside its
noise floor, modes covered, mode-weight TV, precision/recall), and the discriminator's log r against the true
one: log q_t is exact, log p_θ,t is the student's noised density estimated from many generator samples
(p_θ,t(x) = mean_j N(x; alpha_t G(z_j), sigma_t² I), exact as the sample count grows).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def student_log_density(x_t: Tensor, samples: Tensor, alpha: float, sigma: float) -> Tensor:
    """log p_θ,t(x_t) from generator samples [M, d] (Gaussian kernel of the forward process)."""
    d = x_t.shape[1]
    sq = torch.cdist(x_t.double(), alpha * samples.double()) ** 2
    log_k = -0.5 * sq / sigma**2 - 0.5 * d * math.log(2 * math.pi * sigma**2)
    return (torch.logsumexp(log_k, dim=1) - math.log(len(samples))).float()


@torch.no_grad()
def ratio_check(system, n: int = 512, density_samples: int = 8000, timesteps=(200, 400, 600, 800)) -> dict:
    """Per timestep: Pearson correlation and mean |error| of the discriminator's logit against the exact log r
    on noised generator samples (the distribution it is evaluated on in the loss)."""
    if system.discriminator is None:
        return {}
    teacher, g = system.teacher, torch.Generator().manual_seed(4321)
    reference, *_ = system.generate(density_samples, g)
    out = {}
    for step in timesteps:
        x0, cond, *_ = system.generate(n, g)
        t = torch.full((n,), step)
        alpha, sigma = (float(a[0]) for a in teacher.schedule.alpha_sigma(t))
        x_t = alpha * x0 + sigma * torch.randn(x0.shape, generator=g)
        exact = teacher.log_q(x_t, t) - student_log_density(x_t, reference, alpha, sigma)
        logit = system.discriminator(x_t, t, cond)
        corr = torch.corrcoef(torch.stack([logit, exact]))[0, 1]
        out[f"t{step}"] = {"logit_vs_log_r_corr": round(float(corr), 4),
                           "logit_mean_abs_error": round(float((logit - exact).abs().mean()), 4),
                           "log_r_std": round(float(exact.std()), 4)}
    return out


def mixture_metrics(system, n: int) -> dict:
    """Sample quality of the EMA generator and the discriminator's ratio check."""
    from ui3d.metrics.mixture import mixture_report

    x, _ = system.samples(n, seed=2024)
    report = mixture_report(x.double(), system.teacher.mixture, torch.Generator().manual_seed(99))
    return {"samples": {k: _plain(v) for k, v in report.items()}, "ratio": ratio_check(system)}


def _plain(value):
    if torch.is_tensor(value):
        return value.tolist() if value.dim() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@torch.no_grad()
def digit_metrics(images: Tensor, labels: list | None, reference: Tensor, classifier=None) -> dict:
    """Quality of 16×16 digit samples [B, 1, H, W] in [−1, 1] against real digits, in the project classifier's
    feature space: Fréchet distance (FD_clf), k-NN precision/recall, class accuracy (conditional samples), and
    class coverage (classes that get ≥ 2% of the samples)."""
    from ui3d.metrics.frechet import frechet_distance
    from ui3d.metrics.mixture import precision_recall
    from ui3d.teachers.digits.classifier import load_classifier

    classifier = classifier or load_classifier()
    feats, ref_feats = classifier.features(images.float()), classifier.features(reference.float())
    pred = classifier.predict(images.float())
    share = torch.bincount(pred, minlength=10).float() / len(pred)
    out = {"n": len(images), "fd_clf": float(frechet_distance(feats, ref_feats)),
           **precision_recall(ref_feats, feats), "classes_covered": int((share >= 0.02).sum())}
    if labels is not None and labels[0] is not None:
        out["class_acc"] = float((pred == torch.as_tensor(labels)).float().mean())
    return out


def mnist_reference(n: int) -> Tensor:
    """n held-out MNIST test digits at 16×16 in [−1, 1] (the reference of `digit_metrics`)."""
    from ui3d.data.mnist import load_mnist

    images, _ = load_mnist("test", resolution=16)
    return images[:n]


def is_digits_teacher(teacher) -> bool:
    return getattr(teacher, "n_classes", None) == 11 and tuple(teacher.shape) == (1, 16, 16)
