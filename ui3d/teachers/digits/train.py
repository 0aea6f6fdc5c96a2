"""Train the digits teacher on 16×16 MNIST, reproducibly on CPU.

    python -m ui3d.teachers.digits.train                                  # defaults: the shipped teacher
    python -m ui3d.teachers.digits.train --steps 20 --out /tmp/d --work-dir /tmp/d-work   # a quick check

Batches walk a fresh seeded permutation of the 50000 training digits each epoch (item k of the stream is
permutation[k // 50000][k % 50000], so a run is a function of its seed), v-prediction with truncated SNR+1
weighting, 10% label dropout to the null class for classifier-free guidance, EMA weights shipped. Checkpoints
every `--checkpoint-every` steps under `--work-dir`; rerunning the same command resumes from the last one.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from ui3d.data.mnist import load_mnist
from ui3d.diffusion.denoiser import from_denoised
from ui3d.diffusion.weighting import truncated_snr_weight
from ui3d.teachers.digits import model as M
from ui3d.teachers.loader import DIGITS_DIR
from ui3d.teachers.training import run
from ui3d.training import ema_decay, ema_update, mix_seed


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DIGITS_DIR, help="where the diffusers folder is written")
    p.add_argument("--work-dir", type=Path, default=Path("outputs/digits-teacher"), help="checkpoints and logs")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=50)
    return p.parse_args(argv)


class Trainer:
    """Class-conditional UNet denoising training with an EMA copy."""

    def __init__(self, args: argparse.Namespace):
        torch.manual_seed(args.seed)
        self.args, self.cfg = args, M.DigitsTeacherConfig()
        self.unet, self.scheduler = M.build_unet(self.cfg), M.build_scheduler(self.cfg)
        self.ema = {k: v.detach().clone() for k, v in self.unet.state_dict().items()}
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=args.lr, weight_decay=0.0)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()
        self.images, self.labels = load_mnist("train", self.cfg.resolution)
        self.step, self.elapsed, self.history = 0, 0.0, []

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to a tenth."""
        if step < self.args.warmup:
            return self.args.lr * (step + 1) / self.args.warmup
        frac = (step - self.args.warmup) / max(1, self.args.steps - self.args.warmup)
        return self.args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, 1, 16, 16] and labels [B], 10% of them replaced by `NULL_LABEL`."""
        n, size = len(self.labels), self.args.batch_size
        k = torch.arange(step * size, (step + 1) * size)
        epoch, idx = k // n, k % n
        for e in epoch.unique().tolist():
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(self.args.seed, e)))
            idx[epoch == e] = perm[idx[epoch == e]]
        g = torch.Generator().manual_seed(mix_seed(self.args.seed, step, stride=3_000_017))
        drop = torch.rand(size, generator=g) < self.args.label_dropout
        return self.images[idx], torch.where(drop, M.NULL_LABEL, self.labels[idx])

    def loss(self, x0: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(mix_seed(self.args.seed, step, stride=7_000_003))
        t = torch.randint(0, self.cfg.num_train_timesteps, (len(x0),), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        ac = self.alphas_cumprod[t][:, None, None, None]
        alpha, sigma = ac.sqrt(), (1 - ac).sqrt()
        x_t = alpha * x0 + sigma * eps
        pred = self.unet(x_t, t, class_labels=labels).sample
        target = from_denoised(x0, x_t, alpha, sigma, self.cfg.prediction_type)
        weight = truncated_snr_weight((ac / (1 - ac)).flatten(), "v_prediction")
        return (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()

    def train_step(self) -> float:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        x0, labels = self.batch(self.step)
        loss = self.loss(x0, labels, self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt.step()
        state = self.unet.state_dict()
        ema_update([self.ema[k] for k in state], state.values(), ema_decay(self.args.ema, self.step))
        self.step += 1
        return loss.item()

    def state(self) -> dict:
        return {"unet": self.unet.state_dict(), "ema": self.ema, "opt": self.opt.state_dict(),
                "step": self.step, "elapsed": self.elapsed, "history": self.history}

    def load(self, state: dict) -> None:
        self.unet.load_state_dict(state["unet"])
        self.ema, self.step = state["ema"], state["step"]
        self.elapsed, self.history = state["elapsed"], state["history"]
        self.opt.load_state_dict(state["opt"])

    def export(self, out: Path) -> None:
        """Write the EMA weights as the diffusers folder, with the training record."""
        self.unet.load_state_dict(self.ema)
        M.save_teacher(out, self.unet, self.scheduler)
        record = {"steps": self.step, "batch_size": self.args.batch_size, "lr": self.args.lr,
                  "label_dropout": self.args.label_dropout, "wall_time_s": round(self.elapsed, 1),
                  "threads": torch.get_num_threads(),
                  "unet_parameters": sum(p.numel() for p in self.unet.parameters()),
                  "loss_history": self.history}
        (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")


def main(argv=None) -> None:
    args = parse_args(argv)
    run(Trainer(args), args)


if __name__ == "__main__":
    main()
