"""A tiny CNN that names MNIST digits at 16×16: class accuracy of conditional samples, and its penultimate
features the space for Fréchet distances between students and the data.

    python -m ui3d.teachers.digits.classifier --train     # trains and writes digits/classifier/ (~2 min, 1 thread)
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ui3d.data.mnist import load_mnist

CLASSIFIER_DIR = Path(__file__).resolve().parent / "classifier"
RESOLUTION = 16


class DigitClassifier(nn.Module):
    """Images [B, 1, H, W] in [-1, 1] (resized to 16×16) → logits [B, 10]; `features`: the 4·width-d embedding."""

    def __init__(self, width: int = 32):
        super().__init__()
        chans = [1, width, 2 * width, 2 * width, 4 * width]
        layers = []
        for i, (cin, cout) in enumerate(itertools.pairwise(chans)):
            layers += [nn.Conv2d(cin, cout, 3, stride=2 if i in (1, 3) else 1, padding=1), nn.GroupNorm(8, cout),
                       nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], 10)

    def features(self, images: Tensor) -> Tensor:
        """Penultimate activations [B, 4·width] (mean-pooled 4×4 map)."""
        if images.shape[-1] != RESOLUTION:
            images = F.interpolate(images, (RESOLUTION, RESOLUTION), mode="bilinear", antialias=True)
        return self.body(images).mean(dim=(2, 3))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Most likely digit per image, int64 [B]."""
        return self(images).argmax(1)


def load_classifier(path: Path = CLASSIFIER_DIR) -> DigitClassifier:
    """The shipped classifier (eval mode, frozen)."""
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no classifier in {path}; train it with "
                                "`python -m ui3d.teachers.digits.classifier --train`")
    config = json.loads((path / "config.json").read_text())
    model = DigitClassifier(config["width"])
    model.load_state_dict(load_file(path / "model.safetensors"))
    return model.eval().requires_grad_(False)


def shift(images: Tensor, g: torch.Generator, max_shift: int = 1) -> Tensor:
    """Random translation by up to `max_shift` pixels (background −1 fills in): robustness to off-centre samples."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=g).tolist()
    return torch.stack([padded[i, :, y:y + h, x:x + w] for i, (x, y) in enumerate(zip(dx, dy))])


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    correct = sum(int((model.predict(images[i:i + batch_size]) == labels[i:i + batch_size]).sum())
                  for i in range(0, len(labels), batch_size))
    return correct / len(labels)


def train(epochs: int, batch_size: int, width: int = 32, seed: int = 0) -> tuple[DigitClassifier, dict]:
    """AdamW with one-cycle learning rate over the 50000 training digits, ±1 pixel shifts."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    images, labels = load_mnist("train", RESOLUTION)
    model = DigitClassifier(width)
    steps = epochs * (len(labels) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    start = time.time()
    for step in range(steps):
        if step % (len(labels) // batch_size) == 0:
            order = torch.randperm(len(labels), generator=g)
        idx = order[(step % (len(labels) // batch_size)) * batch_size:][:batch_size]
        loss = F.cross_entropy(model(shift(images[idx], g)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.3f} {time.time() - start:.0f}s", flush=True)
    model.eval()
    record = {"epochs": epochs, "batch_size": batch_size, "wall_time_s": round(time.time() - start, 1),
              "threads": torch.get_num_threads(),
              "valid_accuracy": round(accuracy(model, *load_mnist("valid", RESOLUTION)), 4),
              "test_accuracy": round(accuracy(model, *load_mnist("test", RESOLUTION)), 4)}
    return model, record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", action="store_true", help="train and write the weights (else: score the shipped ones)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--out", type=Path, default=CLASSIFIER_DIR)
    args = p.parse_args(argv)
    if not args.train:
        print(f"test accuracy {accuracy(load_classifier(args.out), *load_mnist('test', RESOLUTION)):.4f}")
        return
    model, record = train(args.epochs, args.batch_size, args.width)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), args.out / "model.safetensors")
    (args.out / "config.json").write_text(json.dumps({"width": args.width, **record}, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
