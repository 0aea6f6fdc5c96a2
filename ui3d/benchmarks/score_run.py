"""Is the 3D result recognisably the prompt? The embedded classifier on the frames of a run's turntable.

    python -m ui3d.benchmarks.score_run outputs/uniinstruct-fkl/a_vase@<timestamp> [--stage nerf]

Reads `<run>/<stage>/save/turntable.*`, resizes each frame to the classifier's 32×32, and reports the fraction of
frames whose predicted category (and colour, when the prompt names one) matches the prompt, with the
distribution of predictions. Writes the table to `<run>/<stage>/save/score.md`.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ui3d.export.images import read_video
from ui3d.teachers.embedded.classifier import HEADS, load_classifier


def prompt_labels(prompt: str) -> dict[str, str]:
    """The category / colour / pattern words a prompt names (only those it names)."""
    words = set(prompt.replace(",", " ").lower().split())
    return {head: w for head, labels in HEADS.items() for w in labels if w in words}


def score_frames(frames: torch.Tensor, prompt: str) -> dict:
    """frames [N, H, W, 3] in [0, 1] → accuracy per named attribute and the predicted category and colour
    counts (most frequent first)."""
    predictions = load_classifier().predict(frames.permute(0, 3, 1, 2).contiguous())
    wanted = prompt_labels(prompt)
    scores = {head: sum(p == label for p in predictions[head]) / len(frames) for head, label in wanted.items()}
    return {"accuracy": scores, "categories": Counter(predictions["category"]).most_common(),
            "colors": Counter(predictions["color"]).most_common(), "frames": len(frames)}


@torch.no_grad()
def classifier_features(frames: torch.Tensor) -> torch.Tensor:
    """The embedded classifier's 128-d features [N, 128] of frames [N, H, W, 3] in [0, 1]."""
    return load_classifier().features(frames.permute(0, 3, 1, 2).contiguous())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--stage", default="nerf")
    args = p.parse_args(argv)
    cfg = OmegaConf.load(args.run_dir / "config.yaml")
    prompt = cfg.system.prompt_processor.prompt
    save = args.run_dir / args.stage / "save"
    video = next(iter(sorted(save.glob("turntable.*"))), None)
    if video is None:
        raise SystemExit(f"no turntable in {save}: has stage '{args.stage}' finished?")
    result = score_frames(read_video(video), prompt)
    rows = [f"| {head} | {prompt_labels(prompt)[head]} | {acc:.0%} |" for head, acc in result["accuracy"].items()]
    table = "\n".join([f"prompt: {prompt!r}, {result['frames']} turntable frames ({video.name})", "",
                       "| attribute | prompt says | frames classified so |", "| --- | --- | --- |", *rows, "",
                       "predicted categories: " + ", ".join(f"{c} {n}" for c, n in result["categories"])])
    print(table)
    (save / "score.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
