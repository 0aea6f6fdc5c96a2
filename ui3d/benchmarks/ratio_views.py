"""What the density ratio of a stage-1 Uni-Instruct run knows about its views.

    python -m ui3d.benchmarks.ratio_views RUN_DIR [RUN_DIR ...] --out benchmarks/ratio_views.md

h(r) can only make fkl differ from rkl in 3D if r ranks the views of one object: a view the teacher would not
draw (the mug seen as a box) against one it would. This loads each run's last stage-1 checkpoint (NeRF and the
Uni-Instruct guidance's discriminator), renders `--cameras` training cameras and, at each of `--timesteps`, draws
`--draws` noises per camera. The discriminator's logit (log r before the normalisation) per draw is split into
its parts, per t:

- **view share**: the variance of the per-camera mean logit over the total variance (the rest is the noise's:
  which ε was drawn). Near 0, r is a coin the noise tosses, and h(r) weighs views at random;
- **corr. with the classifier**: the correlation, over cameras, of the mean logit with the embedded classifier's
  probability of the prompt's category on that clean render. Positive: r calls "real" the views that look like
  the prompt (fkl's h(r) = r then weights those views up; rkl weighs all alike).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ui3d.benchmarks.loss_terms import load_stage1
from ui3d.files import write_text


@torch.no_grad()
def view_logits(system, cameras, n_cameras: int, timesteps: list[int], draws: int) -> tuple[torch.Tensor, list]:
    """Logits [T, cameras, draws] and the clean renders [H, W, 3] of the first `n_cameras` training views (every
    view of a batch when the run trains on several per step)."""
    from ui3d.guidance.base import Noised

    guidance = system.guidance
    per_view, renders = [], []
    item = 0
    while len(renders) < n_cameras:
        batch = cameras[item]
        item += 1
        rgb = system.render(batch)["comp_rgb"]
        embeds = system.prompt_processor(batch["elevation"], batch["azimuth"])
        x0 = guidance.teacher.encode_images(rgb.permute(0, 3, 1, 2))
        logits = torch.zeros(len(timesteps), len(rgb), draws)
        for i, step in enumerate(timesteps):
            t = torch.full((len(rgb),), step)
            alpha, sigma = (v.to(x0) for v in guidance.teacher.schedule.alpha_sigma(t))
            for d in range(draws):
                x_t = alpha[:, None, None, None] * x0 + sigma[:, None, None, None] * torch.randn_like(x0)
                _, _, features = guidance.networks(Noised(x0, x_t, t, alpha, sigma), embeds, batch["c2w"])
                logits[i, :, d] = guidance.head(features).flatten()
        per_view.append(logits)
        renders += list(rgb)
    return torch.cat(per_view, dim=1)[:, :n_cameras], renders[:n_cameras]


@torch.no_grad()
def category_probability(renders: list, prompt: str) -> torch.Tensor:
    """The embedded classifier's probability of the prompt's category on each render."""
    from ui3d.benchmarks.score_run import prompt_labels
    from ui3d.teachers.embedded.classifier import HEADS, load_classifier

    images = torch.stack(renders).permute(0, 3, 1, 2).contiguous()
    probs = load_classifier()(images)["category"].softmax(1)
    return probs[:, HEADS["category"].index(prompt_labels(prompt)["category"])]


def decompose(logits: torch.Tensor, probability: torch.Tensor) -> list[dict]:
    """Per t: the view share of the logit's variance and the correlation of the per-camera mean with `probability`."""
    rows = []
    for per_t in logits:
        means = per_t.mean(1)
        total = float(per_t.var(unbiased=False))
        between = float(means.var(unbiased=False))
        corr = float(torch.corrcoef(torch.stack([means, probability]))[0, 1]) if probability.std() > 0 else float("nan")
        rows.append({"mean": float(per_t.mean()), "sd": total**0.5, "view_share": between / total if total else 0.0,
                     "corr": corr})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--cameras", type=int, default=12)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[150, 400, 700])
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "nerf" / "ckpts" / "last.ckpt").is_file():
            raise SystemExit(f"{run} has no stage-1 checkpoint (nerf/ckpts/last.ckpt)")
        if OmegaConf.load(run / "config.yaml").system.guidance_type != "uniinstruct":
            raise SystemExit(f"{run} is not a Uni-Instruct run: it has no density ratio")
    start = time.perf_counter()
    torch.manual_seed(0)
    lines = ["| run | divergence | t | logit mean ± sd | view share of the variance | corr. with P(category) |",
             "| --- | --- | --- | --- | --- | --- |"]
    shares = []
    for run in args.runs:
        cfg = OmegaConf.load(run / "config.yaml")
        prompt, divergence = str(cfg.system.prompt_processor.prompt), str(cfg.system.guidance.divergence)
        system, cameras, step = load_stage1(run)
        logits, renders = view_logits(system, cameras, args.cameras, args.timesteps, args.draws)
        probability = category_probability(renders, prompt)
        for t, row in zip(args.timesteps, decompose(logits, probability)):
            shares.append(row["view_share"])
            lines.append(f"| {prompt} | {divergence} | {t} | {row['mean']:+.2f} ± {row['sd']:.2f} | "
                         f"{100 * row['view_share']:.0f} % | {row['corr']:+.2f} |")
            print(lines[-1], flush=True)
    minutes = (time.perf_counter() - start) / 60
    text = (f"`python -m ui3d.benchmarks.ratio_views <runs> --cameras {args.cameras} --timesteps "
            f"{' '.join(map(str, args.timesteps))} --draws {args.draws}` ({minutes:.1f} min): the discriminator's "
            f"logit on {args.cameras} training cameras × {args.draws} noises per t, at each run's last stage-1 "
            f"checkpoint. Median view share: {100 * statistics.median(shares):.0f} %.\n\n" + "\n".join(lines) + "\n")
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
