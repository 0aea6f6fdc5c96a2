"""A small CNN that names the category, colour and pattern of a render: the offline stand-in for CLIP scores,
and its penultimate features the space for Fréchet distances.

    python -m ui3d.teachers.embedded.classifier          # trains and writes embedded/classifier/ (~3 min)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ui3d.teachers.embedded.dataset import EmbeddedDataConfig, EmbeddedRenderDataset
from ui3d.teachers.embedded.patterns import COLORS, PATTERNS
from ui3d.teachers.embedded.shapes import CATEGORIES

CLASSIFIER_DIR = Path(__file__).resolve().parent / "classifier"
HEADS = {"category": list(CATEGORIES), "color": list(COLORS), "pattern": list(PATTERNS)}
RESOLUTION = 32


class EmbeddedClassifier(nn.Module):
    """Images [B, 3, H, W] in [0, 1] (resized to 32×32) → logits per head; `features` gives the 128-d embedding."""

    def __init__(self, width: int = 32):
        super().__init__()
        chans = [3, width, 2 * width, 2 * width, 4 * width]
        layers = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            layers += [nn.Conv2d(cin, cout, 3, stride=1 if i == 0 else 2, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({name: nn.Linear(chans[-1], len(labels)) for name, labels in HEADS.items()})

    def features(self, images: Tensor) -> Tensor:
        if images.shape[-1] != RESOLUTION:
            images = F.interpolate(images, (RESOLUTION, RESOLUTION), mode="bilinear", antialias=True)
        return self.body(images * 2 - 1).mean(dim=(2, 3))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        feats = self.features(images)
        return {name: head(feats) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: Tensor) -> dict[str, list[str]]:
        """Most likely label per head."""
        return {name: [HEADS[name][i] for i in logits.argmax(1).tolist()] for name, logits in self(images).items()}


def load_classifier(path: Path = CLASSIFIER_DIR) -> EmbeddedClassifier:
    """The shipped classifier (eval mode)."""
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no classifier in {path}; train it with `python -m ui3d.teachers.embedded.classifier`")
    config = json.loads((path / "config.json").read_text())
    if config["heads"] != HEADS:
        raise ValueError(f"{path} was trained for other labels; retrain it")
    model = EmbeddedClassifier(config["width"])
    model.load_state_dict(load_file(path / "model.safetensors"))
    return model.eval().requires_grad_(False)


def labelled_batch(data: EmbeddedRenderDataset, start: int, n: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Renders [n, 3, 32, 32] and label indices per head."""
    items = [data[i] for i in range(start, start + n)]
    labels = {name: torch.tensor([HEADS[name].index(it[name]) for it in items]) for name in HEADS}
    return torch.stack([it["image"] for it in items]), labels


def train(steps: int, batch_size: int, seed: int = 0) -> tuple[EmbeddedClassifier, dict]:
    """Fresh renders every step, light colour-preserving augmentation (pixel noise)."""
    torch.manual_seed(seed)
    model = EmbeddedClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    data = EmbeddedRenderDataset(EmbeddedDataConfig(size=steps * batch_size, seed=seed + 101), split="train")
    start = time.time()
    for step in range(steps):
        images, labels = labelled_batch(data, step * batch_size, batch_size)
        images = (images + 0.03 * torch.randn_like(images)).clamp(0, 1)
        logits = model(images)
        loss = sum(F.cross_entropy(logits[k], labels[k]) for k in HEADS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}/{steps} loss {float(loss):.3f} {time.time() - start:.0f}s", flush=True)
    model.eval()
    val = EmbeddedRenderDataset(EmbeddedDataConfig(size=1000, seed=seed + 101), split="val")
    images, labels = labelled_batch(val, 0, 1000)
    with torch.no_grad():
        logits = model(images)
    accuracy = {k: round(float((logits[k].argmax(1) == labels[k]).float().mean()), 4) for k in HEADS}
    return model, {"steps": steps, "batch_size": batch_size, "wall_time_s": round(time.time() - start, 1),
                   "val_accuracy_1000_renders": accuracy}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=CLASSIFIER_DIR)
    args = p.parse_args(argv)
    model, record = train(args.steps, args.batch_size)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), args.out / "model.safetensors")
    (args.out / "config.json").write_text(json.dumps({"width": 32, "heads": HEADS, **record}, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
