"""Train the embedded teacher on renders of the procedural objects, reproducibly on 2 CPU cores.

    python -m ui3d.teachers.embedded.train                       # defaults: the shipped teacher
    python -m ui3d.teachers.embedded.train --steps 20 --out /tmp/t   # a quick check
    python -m ui3d.teachers.embedded.train --init-from <teacher folder> --normal-map-prob 0.4 --steps 1200 \
        --lr 3e-4 --warmup 50 --work-dir outputs/embedded-teacher-normals   # then the normal maps: the shipped one

`--init-from` starts from a trained teacher folder (its EMA weights; a word new to the vocabulary gets a fresh
embedding row, the others keep theirs), as a fine-tune.

Fresh renders every step (item index = step × batch + i of the deterministic render stream, so no image is seen
twice), text encoder and UNet trained jointly with v-prediction and truncated SNR+1 weighting, 10% prompt dropout for
classifier-free guidance, EMA weights shipped. Checkpoints every `--checkpoint-every` steps under `--work-dir`;
rerunning the same command resumes from the last one.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from ui3d.diffusion.denoiser import from_denoised
from ui3d.diffusion.weighting import truncated_snr_weight
from ui3d.teachers.embedded import model as M
from ui3d.teachers.embedded.dataset import EmbeddedDataConfig, EmbeddedRenderDataset
from ui3d.teachers.loader import EMBEDDED_DIR, load_teacher
from ui3d.teachers.training import run
from ui3d.training import ema_decay, ema_update, mix_seed


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--prompt-dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--normal-map-prob", type=float, default=0.0,
                   help='share of samples that are normal maps prompted "a normal map of a vase, side view"')
    p.add_argument("--init-from", type=Path, default=None, help="a trained teacher folder to start from (a fine-tune)")
    p.add_argument("--out", type=Path, default=EMBEDDED_DIR, help="where the diffusers folder is written")
    p.add_argument("--work-dir", type=Path, default=Path("outputs/embedded-teacher"), help="checkpoints and logs")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=25)
    args = p.parse_args(argv)
    if args.init_from is not None and not (args.init_from / "model_index.json").is_file():
        p.error(f"--init-from {args.init_from} is not a teacher folder (no model_index.json)")
    if not 0.0 <= args.normal_map_prob <= 1.0:
        p.error(f"--normal-map-prob {args.normal_map_prob} is not a probability (give 0 to 1)")
    return args


def init_from(modules: torch.nn.ModuleDict, tokenizer, folder: Path) -> None:
    """Load a trained teacher's UNet and text encoder into `modules` ({"unet", "text"}), whose tokenizer may
    know more words: each word the old vocabulary had keeps its embedding row, a new one keeps its fresh init."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"--init-from {folder}: not a teacher folder (no model_index.json)")
    old = load_teacher(str(folder))  # the project's loader: safetensors only, never pickle
    modules["unet"].load_state_dict(old.unet.state_dict())
    old_text, old_vocab = old.text_encoder, old.tokenizer.get_vocab()
    state = old_text.state_dict()
    key = next(k for k in state if k.endswith("token_embedding.weight"))
    table = modules["text"].state_dict()[key].clone()
    for word, new_id in tokenizer.get_vocab().items():
        if word in old_vocab:
            table[new_id] = state[key][old_vocab[word]]
    state[key] = table
    modules["text"].load_state_dict(state)


def _record_of(folder: Path) -> dict:
    """What a fine-tune started from: the folder and its own training record."""
    record = Path(folder) / "training.json"
    base = json.loads(record.read_text()) if record.is_file() else {}
    return {"folder": str(folder), **{k: v for k, v in base.items() if k != "loss_history"}}


class Trainer:
    """Joint text encoder + UNet denoising training with an EMA copy."""

    def __init__(self, args: argparse.Namespace):
        torch.manual_seed(args.seed)
        self.args, self.cfg = args, M.EmbeddedTeacherConfig()
        self.tokenizer = M.build_tokenizer()
        self.unet, self.scheduler = M.build_unet(self.cfg), M.build_scheduler(self.cfg)
        self.text = M.build_text_encoder(self.tokenizer, self.cfg)
        self.modules = torch.nn.ModuleDict({"unet": self.unet, "text": self.text})
        if args.init_from is not None:
            init_from(self.modules, self.tokenizer, args.init_from)
        self.ema = {k: v.detach().clone() for k, v in self.modules.state_dict().items()}
        self.opt = torch.optim.AdamW(self.modules.parameters(), lr=args.lr, weight_decay=0.0)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()
        self.data = EmbeddedRenderDataset(EmbeddedDataConfig(size=args.steps * args.batch_size, seed=args.seed,
                                                             normal_map_prob=args.normal_map_prob))
        self.step, self.elapsed, self.history = 0, 0.0, []

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to a tenth."""
        if step < self.args.warmup:
            return self.args.lr * (step + 1) / self.args.warmup
        frac = (step - self.args.warmup) / max(1, self.args.steps - self.args.warmup)
        return self.args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def batch(self, step: int) -> tuple[torch.Tensor, list[str]]:
        items = [self.data[step * self.args.batch_size + i] for i in range(self.args.batch_size)]
        g = torch.Generator().manual_seed(mix_seed(self.args.seed, step))
        drop = torch.rand(len(items), generator=g) < self.args.prompt_dropout
        prompts = ["" if d else it["prompt"] for it, d in zip(items, drop)]
        return torch.stack([it["image"] for it in items]) * 2 - 1, prompts

    def loss(self, x0: torch.Tensor, prompts: list[str], step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(mix_seed(self.args.seed, step, stride=7_000_003))
        t = torch.randint(0, self.cfg.num_train_timesteps, (len(x0),), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        ac = self.alphas_cumprod[t][:, None, None, None]
        x_t = ac.sqrt() * x0 + (1 - ac).sqrt() * eps
        ids = self.tokenizer(prompts, padding="max_length", max_length=M.MAX_LENGTH, return_tensors="pt").input_ids
        pred = self.unet(x_t, t, encoder_hidden_states=self.text(ids)[0]).sample
        alpha, sigma = ac.sqrt(), (1 - ac).sqrt()
        target = from_denoised(x0, x_t, alpha, sigma, self.cfg.prediction_type)
        # plain at high noise, where the silhouette is decided; capped at low noise
        weight = truncated_snr_weight((ac / (1 - ac)).flatten(), self.cfg.prediction_type)
        return (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()

    def train_step(self) -> float:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        x0, prompts = self.batch(self.step)
        loss = self.loss(x0, prompts, self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.modules.parameters(), 1.0)
        self.opt.step()
        state = self.modules.state_dict()
        ema_update([self.ema[k] for k in state], state.values(), ema_decay(self.args.ema, self.step))
        self.step += 1
        return loss.item()

    def state(self) -> dict:
        return {"modules": self.modules.state_dict(), "ema": self.ema, "opt": self.opt.state_dict(),
                "step": self.step, "elapsed": self.elapsed, "history": self.history}

    def load(self, state: dict) -> None:
        self.modules.load_state_dict(state["modules"])
        self.ema, self.step, self.elapsed, self.history = state["ema"], state["step"], state["elapsed"], state["history"]
        self.opt.load_state_dict(state["opt"])

    def export(self, out: Path) -> None:
        """Write the EMA weights as the diffusers folder, with the training record."""
        self.modules.load_state_dict(self.ema)
        M.save_teacher(out, self.unet, self.scheduler, self.text, self.tokenizer)
        record = {"steps": self.step, "batch_size": self.args.batch_size, "lr": self.args.lr,
                  "normal_map_prob": self.args.normal_map_prob,
                  "init_from": None if self.args.init_from is None else _record_of(self.args.init_from),
                  "wall_time_s": round(self.elapsed, 1), "threads": torch.get_num_threads(),
                  "unet_parameters": sum(p.numel() for p in self.unet.parameters()),
                  "text_encoder_parameters": sum(p.numel() for p in self.text.parameters()),
                  "loss_history": self.history}
        (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")


def main(argv=None) -> None:
    args = parse_args(argv)
    run(Trainer(args), args)


if __name__ == "__main__":
    main()
