"""2D one-step distillation, measured side by side in one run (DESIGN §4; issue: 2D distillation).

    python -m ui3d.benchmarks.distill2d                  # both parts, writes benchmarks/distill2d.md
    python -m ui3d.benchmarks.distill2d --part mixture   # or --part digits (writes distill2d-<part>.md)

Part 1, the 8-mode ring with unequal weights (exact teacher): one Uni-Instruct run per divergence and seed (same
steps and settings), scored on the EMA generator's samples: modes covered, mode-weight total variation, off-mode
fraction, MMD beside its noise floor. The claim under test: fkl/jkl cover modes better than rkl.

Part 2, the MNIST teacher (16×16, class-conditional): the teacher at NFE ∈ {1, 2, 4, 8, 16, 35} (DDIM) and each
recipe's one-step student, all scored the same way against held-out MNIST digits in the project classifier's
feature space (FD_clf, precision/recall, class accuracy), with training wall time; then a table shaped like the
paper's Table 4 (divergence × GAN × RKL init). Every run goes through `launch.py` (configs/distill2d/).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import launch

DIVERGENCES = ("fkl", "rkl", "jkl", "chi2", "js")
NFES = (1, 2, 4, 8, 16, 35)
STUDENTS = (  # (row name, config, extra overrides); "warm:<row>" starts from that row's run
    ("Uni-Instruct rkl", "uniinstruct-rkl.yaml", ()),
    ("Uni-Instruct fkl", "uniinstruct-fkl.yaml", ()),
    ("Uni-Instruct fkl + GAN", "uniinstruct-fkl-gan.yaml", ()),
    ("Uni-Instruct fkl + GAN, RKL init", "uniinstruct-fkl-gan.yaml", ("warm:Uni-Instruct rkl",)),
    ("Uni-Instruct jkl", "uniinstruct-jkl.yaml", ()),
    ("Uni-Instruct jkl + GAN, RKL init", "uniinstruct-jkl.yaml", ("system.loss.lambda_gan=0.01", "warm:Uni-Instruct rkl")),
    ("Uni-Instruct fkl (paper form)", "uniinstruct-fkl-paper.yaml", ()),
    ("Diff-Instruct", "diff-instruct.yaml", ()),
    ("DMD", "dmd.yaml", ()),
    ("SiD", "sid.yaml", ()),
    ("f-distill js", "f-distill-js.yaml", ()),
)
ABLATION = (  # Table 4's shape: divergence × GAN × RKL init, rows drawn from STUDENTS
    ("rkl", "no", "no", "Uni-Instruct rkl"),
    ("fkl", "no", "no", "Uni-Instruct fkl"),
    ("fkl", "yes", "no", "Uni-Instruct fkl + GAN"),
    ("fkl", "yes", "yes", "Uni-Instruct fkl + GAN, RKL init"),
    ("jkl", "no", "no", "Uni-Instruct jkl"),
    ("jkl", "yes", "yes", "Uni-Instruct jkl + GAN, RKL init"),
)


def run(config: str, root: Path, tag: str, overrides: list[str]) -> tuple[Path, dict, float]:
    """Train one config through launch.py; (run dir, save/metrics.json, training seconds)."""
    code = launch.main(["--config", f"distill2d/{config}", f"exp_root_dir={root}", f"tag={tag}", *overrides])
    if code != 0:
        raise RuntimeError(f"{config} {' '.join(overrides)} exited with {code}")
    (run_dir,) = sorted(p for family in root.iterdir() for p in family.glob(f"{tag}@*"))
    stage = run_dir / "main"
    seconds = float((stage / "done").read_text().split(",")[1].split()[0])
    return run_dir, json.loads((stage / "save" / "metrics.json").read_text()), seconds


def mixture_part(args) -> str:
    rows, root = [], args.root / "mixture"
    for div in DIVERGENCES:
        found = []
        for seed in args.seeds:
            _, metrics, seconds = run(f"uniinstruct-{div}.yaml", root, f"{div}-s{seed}",
                                      ["extends=mixture.yaml", f"seed={seed}", f"steps={args.mixture_steps}"])
            found.append((metrics["samples"], seconds))
        s = [m for m, _ in found]
        covered = [m["modes_covered"] for m in s]
        tv = [m["mode_tv"] for m in s]
        rows.append(
            f"| {div} | {' / '.join(map(str, covered))} | {statistics.mean(tv):.3f} ± {statistics.pstdev(tv):.3f} "
            f"| {statistics.mean(m['off_mode'] for m in s):.3f} | {statistics.mean(m['recall'] for m in s):.3f} "
            f"| {statistics.mean(m['mmd'] / m['mmd_floor'] for m in s):.0f} "
            f"| {statistics.mean(t for _, t in found):.0f} |")
    header = ("| divergence | modes covered (of 8), per seed | mode-weight TV (mean ± sd) | off-mode fraction "
              "| recall | MMD / noise floor | train s / run |\n|" + " --- |" * 7)
    return "\n".join([header, *rows])


def digit_row(name: str, metrics: dict, seconds: str, nfe: str) -> str:
    return (f"| {name} | {nfe} | {metrics['fd_clf']:.2f} | {metrics['precision']:.3f} | {metrics['recall']:.3f} "
            f"| {metrics.get('class_acc', float('nan')):.3f} | {metrics['classes_covered']} | {seconds} |")


def digits_part(args) -> str:
    from ui3d.distill2d.evaluate import digit_metrics, mnist_reference
    from ui3d.distill2d.teachers import UNetTeacher

    reference = mnist_reference(args.samples)
    teacher = UNetTeacher(UNetTeacher.Config())
    header = ("| model | NFE | FD_clf ↓ | precision | recall | class acc. | classes covered | train s |\n|"
              + " --- |" * 8)
    rows, scores = [], {}
    for nfe in NFES:
        start = time.time()
        x, labels = teacher.sample(args.samples, nfe, torch.Generator().manual_seed(0))
        metrics = digit_metrics(x, labels, reference)
        scores[f"teacher@{nfe}"] = metrics["fd_clf"]
        rows.append(digit_row("teacher (DDIM)", metrics, f"({time.time() - start:.0f} s sampling)", str(nfe)))
    runs, root = {}, args.root / "digits"
    for name, config, extra in STUDENTS:
        overrides = [f"steps={args.digit_steps}", f"system.n_eval_samples={args.samples}"]
        for item in extra:
            overrides.append(f"system.warm_start={runs[item[5:]]}" if item.startswith("warm:") else item)
        tag = name.lower().replace(" ", "-").replace(",", "").replace("+", "plus").replace("(", "").replace(")", "")
        runs[name], metrics, seconds = run(config, root, tag, overrides)
        scores[name] = metrics["samples"]["fd_clf"]
        rows.append(digit_row(name, metrics["samples"], f"{seconds:.0f}", "1"))
    table = "\n".join([header, *rows])
    ablation = ["| divergence | GAN | RKL init | FD_clf ↓ |", "| --- | --- | --- | --- |"]
    ablation += [f"| {d} | {g} | {i} | {scores[row]:.2f} |" for d, g, i, row in ABLATION]
    best = min((n for n, _, _ in STUDENTS), key=scores.get)
    verdict = (f"Best student: {best}, FD_clf {scores[best]:.2f}; teacher at NFE 4: {scores['teacher@4']:.2f}, "
               f"NFE 35: {scores['teacher@35']:.2f}. Targets: student < teacher@4 "
               f"({'met' if scores[best] < scores['teacher@4'] else 'not met'}), "
               f"student ≤ 1.5 × teacher@35 ({'met' if scores[best] <= 1.5 * scores['teacher@35'] else 'not met'}).")
    return f"{table}\n\n{verdict}\n\nTable 4 shape (FD_clf of the one-step student):\n\n" + "\n".join(ablation)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("mixture", "digits", "all"), default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mixture-steps", type=int, default=1500)
    p.add_argument("--digit-steps", type=int, default=150)
    p.add_argument("--samples", type=int, default=1000, help="samples per digits row (and mixture eval)")
    p.add_argument("--root", type=Path, default=Path("outputs/bench-distill2d"))
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/distill2d[-<part>].md")
    args = p.parse_args(argv)
    args.out = args.out or Path("benchmarks/distill2d" + ("" if args.part == "all" else f"-{args.part}") + ".md")
    args.root = args.root / time.strftime("%Y%m%d-%H%M%S")
    sections = [f"# 2D one-step distillation\n\n`python -m ui3d.benchmarks.distill2d --part {args.part}` "
                f"({torch.get_num_threads()} CPU threads).\n"]
    if args.part in ("mixture", "all"):
        table = mixture_part(args)
        sections.append(f"## 8-mode ring, unequal weights (8:7:…:1), {args.mixture_steps} steps, seeds "
                        f"{args.seeds}\n\n{table}\n")
        print(table)
    if args.part in ("digits", "all"):
        table = digits_part(args)
        sections.append(f"## MNIST 16×16, class-conditional teacher, students {args.digit_steps} steps, "
                        f"{args.samples} samples per row against {args.samples} test digits\n\n{table}\n")
        print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sections))


if __name__ == "__main__":
    main()
