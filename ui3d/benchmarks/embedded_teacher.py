"""How good is the embedded teacher? Samples for every category × colour prompt, scored offline.

    python -m ui3d.benchmarks.embedded_teacher          # prints the table, writes benchmarks/embedded_teacher.md
                                                         # and the sample grid benchmarks/embedded_teacher.png

DDIM with classifier-free guidance; the embedded classifier's accuracy on category and colour of the samples;
the Fréchet distance in the classifier's feature space between samples and held-out renders, beside the same
distance between two halves of the held-out renders (the floor: what perfect samples would score at this n).

Normal maps (the style a geometry stage guides, "a normal map of a vase, side view"), when the teacher knows the
words: `--normal-maps` samples per category, scored by the category of the nearest real normal map (L2, a bank of
every variant of every category from 24 cameras of stage 1's distribution) and by how far the foreground decodes to
unit vectors (mean | ‖2x − 1‖ − 1 | over pixels darker than the white background; real renders score the floor).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ui3d.data.cameras import sample_cameras, view_direction, view_prompt
from ui3d.diffusion.samplers import sample_ddim
from ui3d.metrics.frechet import frechet_distance
from ui3d.teachers.embedded.classifier import load_classifier
from ui3d.teachers.embedded.dataset import EmbeddedDataConfig, EmbeddedRenderDataset, render_object, save_image
from ui3d.teachers.embedded.objects import NORMAL_MAP_STYLE, ObjectSpec, normal_map_prompt
from ui3d.teachers.embedded.patterns import COLORS
from ui3d.teachers.embedded.shapes import CATEGORIES, num_variants
from ui3d.teachers.loader import load_teacher


def prompts_for(per_prompt: int, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, category, colour) for every category × colour, `per_prompt` times, with sampled view suffixes."""
    pairs = [(cat, col) for cat in CATEGORIES for col in COLORS] * per_prompt
    cams = sample_cameras(len(pairs), generator=torch.Generator().manual_seed(seed))
    views = view_direction(cams.elevation_deg, cams.azimuth_deg)
    return [(view_prompt(f"a {col} {cat}", v), cat, col) for (cat, col), v in zip(pairs, views)]


@torch.no_grad()
def sample(teacher, prompts: list[str], steps: int, guidance_scale: float, seed: int, batch: int = 45) -> torch.Tensor:
    """One sample per prompt (DDIM, CFG), `batch` prompts at a time, in order."""
    uncond, start = teacher.encode_text([""]), [0]

    def conditions(n: int, generator: torch.Generator) -> tuple:
        chunk = prompts[start[0] : start[0] + n]
        start[0] += n
        return teacher.encode_text(chunk), uncond.expand(n, -1, -1), chunk

    images, _ = sample_ddim(lambda x, t, cond, uncond_: teacher.denoise_cfg(x, t, cond, uncond_, guidance_scale),
                            conditions, teacher.shape, len(prompts), teacher.schedule, steps,
                            torch.Generator().manual_seed(seed), batch, teacher.device, teacher.decode)
    return images


def sample_prompts(prompt: str, n: int, seed: int = 0, steps: int = 50, guidance_scale: float = 7.5) -> torch.Tensor:
    """n samples [n, 3, R, R] in [0, 1] of one prompt by the shipped teacher, each with the view suffix of a
    camera drawn from stage 1's distribution (what a 3D run asks the teacher for)."""
    cams = sample_cameras(n, generator=torch.Generator().manual_seed(seed))
    views = view_direction(cams.elevation_deg, cams.azimuth_deg)
    return sample(load_teacher("embedded"), [view_prompt(prompt, v) for v in views], steps, guidance_scale, seed)


def normal_map_bank(cameras: int = 24, seed: int = 0, resolution: int = 32) -> tuple[torch.Tensor, list[str]]:
    """Real normal maps [N, 3, R, R] of every variant of every category from `cameras` random cameras, and their
    categories."""
    cams = sample_cameras(cameras, generator=torch.Generator().manual_seed(seed))
    images, labels = [], []
    for category in CATEGORIES:
        for variant in range(num_variants(category)):
            images.append(render_object(ObjectSpec(category, variant, "red", "plain"), cams, resolution,
                                        normal_map=True))
            labels += [category] * cameras
    return torch.cat(images), labels


def unit_error(images: torch.Tensor, background: float = 0.98) -> torch.Tensor:
    """Per image: mean | ‖2x − 1‖ − 1 | over the foreground (pixels not all above `background`): how far the
    image is from decoding to unit normals."""
    fg = (images < background).any(dim=1)
    err = ((2 * images - 1).norm(dim=1) - 1).abs()
    return (err * fg).sum(dim=(1, 2)) / fg.sum(dim=(1, 2)).clamp_min(1)


def nearest_category(images: torch.Tensor, bank: torch.Tensor, labels: list[str]) -> list[str]:
    """The category of each image's nearest bank image (L2)."""
    d = torch.cdist(images.flatten(1), bank.flatten(1))
    return [labels[i] for i in d.argmin(dim=1).tolist()]


def normal_map_rows(teacher, per_category: int, steps: int, scales: list[float], seed: int,
                    out: Path) -> list[str]:
    """Table rows scoring the teacher's normal maps (one per CFG scale), with the real renders' row first."""
    bank, labels = normal_map_bank(seed=seed + 1)
    cams = sample_cameras(len(CATEGORIES) * per_category, generator=torch.Generator().manual_seed(seed))
    views = view_direction(cams.elevation_deg, cams.azimuth_deg)
    cats = [c for c in CATEGORIES for _ in range(per_category)]
    prompts = [view_prompt(normal_map_prompt(ObjectSpec(c, 0, "red", "plain")), v) for c, v in zip(cats, views)]
    real = torch.cat([render_object(ObjectSpec(c, 0, "red", "plain"), cams[i : i + 1], 32, normal_map=True)
                      for i, c in enumerate(cats)])
    rows = [f"| real renders | {len(cats)} | {_accuracy(nearest_category(real, bank, labels), cats):.1%} "
            f"| {unit_error(real).mean():.3f} | – |"]
    for scale in scales:
        start = time.time()
        images = sample(teacher, prompts, steps, scale, seed)
        seconds = time.time() - start
        rows.append(f"| CFG {scale:g} | {len(cats)} | {_accuracy(nearest_category(images, bank, labels), cats):.1%} "
                    f"| {unit_error(images).mean():.3f} | {seconds / len(cats):.2f} |")
        save_rows(images, len(CATEGORIES), out.with_name(f"embedded_teacher_normals_cfg{scale:g}.png"))
    return rows


def save_rows(images: torch.Tensor, rows: int, path: Path) -> None:
    """Save images [rows · k, 3, R, R] as one PNG grid, k per row, in order."""
    grid = images.reshape(rows, -1, 3, *images.shape[-2:])
    save_image(grid.permute(2, 0, 3, 1, 4).reshape(3, rows * images.shape[-2], -1), path)


def _accuracy(predicted: list[str], truth: list[str]) -> float:
    return sum(p == t for p, t in zip(predicted, truth)) / len(truth)


def held_out(n: int) -> torch.Tensor:
    data = EmbeddedRenderDataset(EmbeddedDataConfig(size=n), split="test")
    return torch.stack([data[i]["image"] for i in range(n)])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-prompt", type=int, default=4, help="samples per category × colour prompt")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--guidance-scale", type=float, nargs="+", default=[3.0, 7.5],
                   help="CFG scales, one row each (7.5 is what the 3D configs use)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--normal-maps", type=int, default=4,
                   help="normal-map samples per category (0: none; skipped when the teacher lacks the words)")
    p.add_argument("--skip-rgb", action="store_true", help="score the normal maps alone")
    p.add_argument("--teacher", default="embedded", help="the teacher to score (a folder; default: the shipped one)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/embedded_teacher.md"),
                   help="the table's file (a folder: <folder>/embedded_teacher.md); sample grids go beside it")
    args = p.parse_args(argv)
    if args.out.is_dir() or not args.out.suffix:
        args.out = args.out / "embedded_teacher.md"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    teacher, classifier = load_teacher(args.teacher), load_classifier()
    triples = prompts_for(args.per_prompt, args.seed)
    n = len(triples)
    real = held_out(2 * n)
    feats_real = classifier.features(real)
    floor = frechet_distance(feats_real[:n], feats_real[n:])
    rows = []
    for scale in [] if args.skip_rgb else args.guidance_scale:
        start = time.time()
        images = sample(teacher, [t[0] for t in triples], args.steps, scale, args.seed)
        seconds = time.time() - start
        pred = classifier.predict(images)
        cat_acc = _accuracy(pred["category"], [t[1] for t in triples])
        col_acc = _accuracy(pred["color"], [t[2] for t in triples])
        fd = frechet_distance(classifier.features(images), feats_real[:n])
        rows.append(f"| {scale:g} | {n} | {cat_acc:.1%} | {col_acc:.1%} | {fd:.2f} | {floor:.2f} | {seconds / n:.2f} |")
        save_rows(images[: len(CATEGORIES) * len(COLORS)], len(CATEGORIES),
                  args.out.with_name(f"embedded_teacher_cfg{scale:g}.png"))
    header = ("| CFG | samples | category acc. | colour acc. | Fréchet dist. (samples vs held-out) "
              "| floor (held-out halves) | s / sample |\n|" + " --- |" * 7)
    table = "\n".join([header, *rows])
    knows = set(NORMAL_MAP_STYLE.split()) <= set(teacher.vocabulary() or ())
    if args.normal_maps > 0 and knows:
        normal_rows = normal_map_rows(teacher, args.normal_maps, args.steps, args.guidance_scale, args.seed, args.out)
        table += ("\n\nNormal maps (\"a normal map of a <category>, <view> view\", "
                  f"{args.normal_maps} per category):\n\n| samples | n | category (nearest real normal map) "
                  "| unit-norm error | s / sample |\n|" + " --- |" * 5 + "\n" + "\n".join(normal_rows))
    print(table)
    args.out.write_text(
        f"# Embedded teacher quality\n\n`python -m ui3d.benchmarks.embedded_teacher` ({args.steps}-step DDIM, "
        f"{args.per_prompt} samples per category × colour prompt with view suffixes, classifier features for the "
        f"Fréchet distance, {torch.get_num_threads()} CPU threads).\n\n{table}\n\n"
        "Sample grids: one row per category, one column per colour (`embedded_teacher_cfg<scale>.png`); normal "
        "maps one row per category (`embedded_teacher_normals_cfg<scale>.png`).\n"
    )


if __name__ == "__main__":
    main()
