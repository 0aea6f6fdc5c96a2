"""Why the exact Uni-Instruct loss blows a NeRF up after the RKL → FKL switch: each term's gradient on the render.

    python -m ui3d.benchmarks.loss_terms outputs/uniinstruct-rkl/<run>    # a stage-1 run (its last checkpoint)

Loads the NeRF, fake score and discriminator of a stage-1 checkpoint, renders a few training cameras and, at
fixed t, draws `--draws` noises per (camera, t). Per draw it takes the gradient on the render (x_0, denoiser
units, σ² weighting as the shipped configs) of each part of the per-time loss (DESIGN §3.2, r = 1 where the
divergence enters, as right after a warm start):

- `‖δ‖²` (in fkl's exact form its weight h − r h′ is 0; rkl's is 1),
- `−2δ·(c − s_p)`, the SiD/SIM cross term (weight h),
- `DI`, the stand-in for the ratio's gradient with a detached r: x_t · SG(−2 r h′ δ·(c − s_p) δ) (fkl, jkl);
- `GAN`, softplus(−logit) (weighted by `lambda_gan` in the loss);
- `direct`, the part of `−2δ·(c − s_p)` that does not flow through the networks' inputs (−2δ: Diff-Instruct's
  and VSD's direction), and `inputs`, the rest (the score-identity terms).

Reported per term: the mean gradient norm over draws and the norm of the mean gradient (equal when the term
points the same way for every noise, much smaller when it is noise), and the cosine between the mean gradients
of the DI and cross terms. Writes `--out` (benchmarks/loss_terms.md).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ui3d.config import parse_structured, stage_block
from ui3d.distill.losses import per_sample_sum

TERMS = ("‖δ‖²", "−2δ·(c−s_p)", "DI", "GAN", "direct", "inputs")


def load_stage1(run_dir: Path):
    """The stage-1 system of a run with its last checkpoint loaded, and the training camera dataset."""
    from ui3d.data.datamodule import RandomCameraConfig, RandomCameraDataset
    from ui3d.systems.text_to_3d import TextTo3DSystem
    from ui3d.teachers.loader import load_teacher

    block = stage_block(OmegaConf.load(run_dir / "config.yaml"), "nerf")
    cfg = parse_structured(TextTo3DSystem.Config, block.system)
    system = TextTo3DSystem(cfg, load_teacher(cfg.guidance["pretrained_model_name_or_path"]), run_dir / "unused")
    checkpoint = torch.load(run_dir / "nerf" / "ckpts" / "last.ckpt", map_location="cpu", weights_only=True)
    system.load_state_dict(checkpoint["state_dict"], strict=False)
    system.on_load_checkpoint(checkpoint)
    step = int(checkpoint["global_step"])
    for part in (system.renderer, system.material, system.guidance):
        part.update_step(step)
    system.renderer.update_occupancy()
    return system.eval(), RandomCameraDataset(parse_structured(RandomCameraConfig, block.data), 1000), step


def term_gradients(system, batch, t: int) -> dict[str, torch.Tensor]:
    """Each term's gradient on x_0 for one render, one t and one noise draw."""
    from ui3d.guidance.base import Noised

    guidance = system.guidance
    with torch.no_grad():
        rgb = system.render(batch)["comp_rgb"]
    embeds = system.prompt_processor(batch["elevation"], batch["azimuth"])
    x0 = guidance.teacher.encode_images(rgb.permute(0, 3, 1, 2)).requires_grad_(True)
    t = torch.tensor([t])
    alpha, sigma = (v.to(x0) for v in guidance.teacher.schedule.alpha_sigma(t))
    x_t = alpha * x0 + sigma * torch.randn_like(x0)
    d_q, d_p, features = guidance.networks(Noised(x0, x_t, t, alpha, sigma), embeds, batch["c2w"])
    logit = guidance.head(features)
    delta, residual = d_q - d_p, x0 - d_p
    dd, dc = per_sample_sum(delta**2), per_sample_sum(delta * residual)
    w, unit = sigma**2, alpha / sigma**2
    direct = per_sample_sum(-2 * delta.detach() * x0)  # −2δ·x0 with δ frozen: the part not through the inputs
    losses = {"‖δ‖²": w * dd, "−2δ·(c−s_p)": w * -2 * dc, "GAN": torch.nn.functional.softplus(-logit),
              "DI": w * per_sample_sum(x_t * (-2 * dc[:, None, None, None] * delta * unit).detach()),
              "direct": w * direct}
    grads = {k: torch.autograd.grad(v.sum(), x0, retain_graph=True)[0] for k, v in losses.items()}
    grads["inputs"] = grads["−2δ·(c−s_p)"] - grads["direct"]
    return grads


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--cameras", type=int, default=3)
    p.add_argument("--timesteps", type=int, nargs="+", default=[150, 400, 700, 900])
    p.add_argument("--draws", type=int, default=16, help="noise draws per camera and t")
    p.add_argument("--out", type=Path, default=Path("benchmarks/loss_terms.md"))
    args = p.parse_args(argv)
    torch.manual_seed(0)
    system, cameras, step = load_stage1(args.run_dir)
    rows = []
    for cam in range(args.cameras):
        batch = cameras[cam + 11]
        for t in args.timesteps:
            draws = [term_gradients(system, batch, t) for _ in range(args.draws)]
            cells = []
            for term in TERMS:
                g = torch.stack([d[term].flatten() for d in draws])
                cells.append(f"{float(g.norm(dim=1).mean()):.3g} / {float(g.mean(0).norm()):.3g}")
            di, cross = (torch.stack([d[k].flatten() for d in draws]).mean(0) for k in ("DI", "−2δ·(c−s_p)"))
            cosine = float(torch.nn.functional.cosine_similarity(di, cross, dim=0))
            rows.append(f"| {cam} | {t} | " + " | ".join(cells) + f" | {cosine:+.2f} |")
            print(rows[-1], flush=True)
    head = ("| camera | t | " + " | ".join(TERMS) + " | cos(DI, cross) |\n|" + " --- |" * (len(TERMS) + 3))
    table = "\n".join([head, *rows])
    prompt = OmegaConf.load(args.run_dir / "config.yaml").system.prompt_processor.prompt
    text = (f"# The terms of the Uni-Instruct loss on a NeRF\n\n`python -m ui3d.benchmarks.loss_terms "
            f"{args.run_dir}` (prompt {prompt!r}, checkpoint at step {step}; per cell: mean gradient norm over "
            f"{args.draws} noise draws / norm of the mean gradient, σ² weighting, r = 1).\n\n{table}\n")
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
