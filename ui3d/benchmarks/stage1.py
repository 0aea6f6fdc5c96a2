"""Stage 1 side by side: which guidance settings give a NeRF that is recognisably the prompt?

    python -m ui3d.benchmarks.stage1                 # every row below, writes benchmarks/stage1.md
    python -m ui3d.benchmarks.stage1 --rows 0 7      # some of them (indices into ROWS)

Each row trains the NeRF stage of a shipped config through `launch.py` (same prompt, seed, steps and cameras; only
the listed overrides differ) and scores its 30-frame turntable with the embedded classifier (`score_run`): the
fraction of frames whose category is the prompt's, the predicted categories, and the wall time of the stage.
The rows are the ablation behind the shipped Uni-Instruct settings (`weighting: sds`, `detach_ratio: true`, the
RKL → FKL warm start), next to SDS and VSD on the same teacher.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ui3d.benchmarks.common import train_run
from ui3d.benchmarks.score_run import prompt_labels, score_frames
from ui3d.export.images import read_video

NORMALIZED = "system.guidance.weighting=normalized"
EXACT_R = "system.guidance.detach_ratio=false"
ROWS = (  # (row name, config, overrides)
    ("SDS (dreamfusion)", "dreamfusion.yaml", ()),
    ("VSD (prolificdreamer)", "prolificdreamer.yaml", ()),
    ("Uni-Instruct rkl", "uniinstruct-rkl.yaml", ()),
    ("Uni-Instruct rkl, normalized weighting", "uniinstruct-rkl.yaml", (NORMALIZED,)),
    ("Uni-Instruct fkl, rkl warm start (shipped)", "uniinstruct-fkl.yaml", ()),
    ("Uni-Instruct fkl, gradient through r", "uniinstruct-fkl.yaml", (EXACT_R,)),
    ("Uni-Instruct fkl, normalized weighting", "uniinstruct-fkl.yaml", (NORMALIZED,)),
    ("Uni-Instruct fkl, normalized weighting, gradient through r", "uniinstruct-fkl.yaml", (NORMALIZED, EXACT_R)),
    ("Uni-Instruct fkl, no warm start", "uniinstruct-fkl.yaml", ("system.guidance.rkl_warm_start_steps=0",)),
    ("Uni-Instruct jkl, rkl warm start", "uniinstruct-jkl.yaml", ()),
)


def run_row(index: int, config: str, overrides: tuple, prompt: str, steps: int | None, root: Path) -> dict:
    """Train one row's NeRF stage; its turntable's scores and the stage's wall time."""
    extra = [f"steps={steps}"] if steps else []
    run_dir, seconds = train_run(config, root, f"row{index}", ["--stage", "nerf", f"prompt={prompt}", *extra,
                                                                *overrides], "nerf")
    stage = run_dir / "nerf"
    video = next(iter(sorted((stage / "save").glob("turntable.*"))))
    return {**score_frames(read_video(video), prompt), "seconds": seconds, "run": run_dir}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", default="a vase")
    p.add_argument("--rows", type=int, nargs="+", default=list(range(len(ROWS))))
    p.add_argument("--steps", type=int, default=None, help="cap every row's steps (default: each config's own)")
    p.add_argument("--root", type=Path, default=Path("outputs/bench-stage1") / time.strftime("%Y%m%d-%H%M%S"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/stage1.md"))
    args = p.parse_args(argv)
    bad = [i for i in args.rows if not 0 <= i < len(ROWS)]
    if bad:
        raise SystemExit(f"--rows {bad}: there are {len(ROWS)} rows, 0..{len(ROWS) - 1}")
    category = prompt_labels(args.prompt).get("category")
    if category is None:
        raise SystemExit(f"--prompt {args.prompt!r} names no category the embedded classifier knows")
    lines = [f"| stage-1 guidance | overrides | frames called '{category}' | predicted categories | stage s |",
             "| --- | --- | --- | --- | --- |"]
    for i in args.rows:
        name, config, overrides = ROWS[i]
        r = run_row(i, config, overrides, args.prompt, args.steps, args.root)
        hits = r["accuracy"].get("category", 0.0) * r["frames"]
        cats = ", ".join(f"{c} {n}" for c, n in r["categories"])
        lines.append(f"| {name} | `{' '.join(overrides) or '—'}` | {hits:.0f} / {r['frames']} | {cats} "
                     f"| {r['seconds']:.0f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"# Stage 1 side by side\n\n`python -m ui3d.benchmarks.stage1` (prompt {args.prompt!r}, the embedded teacher, "
        f"each config's NeRF stage{f' capped at {args.steps} steps' if args.steps else ''}, "
        f"{torch.get_num_threads()} CPU threads; turntables scored by the embedded classifier).\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
