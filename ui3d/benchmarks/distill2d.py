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
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from ui3d.benchmarks.common import train_run

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
    """Train one distill2d config through launch.py; (run dir, save/metrics.json, training seconds)."""
    run_dir, seconds = train_run(f"distill2d/{config}", root, tag, overrides, "main")
    return run_dir, json.loads((run_dir / "main" / "save" / "metrics.json").read_text()), seconds


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_all(jobs: list[tuple[str, Path, str, list[str]]], workers: int) -> list[tuple[Path, dict, float]]:
    """`run` for each (config, root, tag, overrides), `workers` at a time in separate processes (one CPU thread
    each) or in this process when `workers` is 1."""
    if workers <= 1:
        return [run(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(1,)) as pool:
        return list(pool.map(run, *zip(*jobs)))


def mixture_part(args) -> str:
    rows, root = [], args.root / "mixture"
    jobs = [(f"uniinstruct-{div}.yaml", root, f"{div}-s{seed}",
             ["extends=mixture.yaml", f"seed={seed}", f"steps={args.mixture_steps}"])
            for div in DIVERGENCES for seed in args.seeds]
    results = iter(run_all(jobs, args.jobs))
    for div in DIVERGENCES:
        found = []
        for _ in args.seeds:
            _, metrics, seconds = next(results)
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
    rows, scores, kept = [], {}, {}
    for nfe in NFES:
        start = time.time()
        x, labels = teacher.sample(args.samples, nfe, torch.Generator().manual_seed(0))
        kept[f"teacher (DDIM), NFE {nfe}"] = x
        metrics = digit_metrics(x, labels, reference)
        scores[f"teacher@{nfe}"] = metrics["fd_clf"]
        rows.append(digit_row("teacher (DDIM)", metrics, f"({time.time() - start:.0f} s sampling)", str(nfe)))
    runs, root, done = {}, args.root / "digits", {}
    for wave in (False, True):  # rows that start from another row's run go second
        jobs, names = [], []
        for name, config, extra in STUDENTS:
            if any(item.startswith("warm:") for item in extra) != wave:
                continue
            overrides = [f"steps={args.digit_steps}", f"system.n_eval_samples={args.samples}"]
            for item in extra:
                overrides.append(f"system.warm_start={runs[item[5:]]}" if item.startswith("warm:") else item)
            tag = name.lower().replace(" ", "-").replace(",", "").replace("+", "plus").replace("(", "").replace(")", "")
            jobs.append((config, root, tag, overrides))
            names.append(name)
        for name, (run_dir, metrics, seconds) in zip(names, run_all(jobs, args.jobs)):
            runs[name], done[name] = run_dir, (metrics, seconds)
    for name, _, _ in STUDENTS:
        metrics, seconds = done[name]
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
    out = f"{table}\n\n{verdict}\n\nTable 4 shape (FD_clf of the one-step student):\n\n" + "\n".join(ablation)
    if args.fid_samples:
        samples = torch.load(runs[best] / "main" / "save" / "samples.pt")["images"].float() / 127.5 - 1
        sets = {f"best student ({best}), NFE 1": samples,
                **{k: v for k, v in kept.items() if k.endswith(("NFE 4", "NFE 35"))}}
        out += "\n\n" + inception_fid_table(sets, args.fid_samples)
    return out


def inception_fid_table(sets: dict[str, torch.Tensor], n: int) -> str:
    """FID (InceptionV3 pool3, `ui3d.metrics.fid`) of each set's first n digits against n MNIST test digits,
    beside the same FID between two disjoint halves of the test digits (the floor at this n)."""
    from ui3d.distill2d.evaluate import mnist_reference
    from ui3d.metrics.fid import InceptionFeatures, fid

    inception = InceptionFeatures()
    digits = mnist_reference(2 * n)
    start = time.time()
    ref = inception.features(digits[:n], value_range=(-1, 1))
    lines = [f"Inception FID ({n} samples per row against {n} MNIST test digits; 16×16 digits resized to 299×299):",
             "", "| model | FID ↓ |", "| --- | --- |",
             f"| real test digits (the other {n}: the floor) | {fid(inception.features(digits[n:], (-1, 1)), ref):.2f} |"]
    for name, x in sets.items():
        if len(x) < n:
            raise ValueError(f"{name}: {len(x)} samples, fewer than --fid-samples {n}")
        lines.append(f"| {name} | {fid(inception.features(x[:n], (-1, 1)), ref):.2f} |")
        print(lines[-1], flush=True)
    lines += ["", f"({len(sets) + 2} × {n} images through InceptionV3 in {time.time() - start:.0f} s.)"]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("mixture", "digits", "all"), default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mixture-steps", type=int, default=1500)
    p.add_argument("--digit-steps", type=int, default=150)
    p.add_argument("--samples", type=int, default=1000, help="samples per digits row (and mixture eval)")
    p.add_argument("--fid-samples", type=int, default=1000,
                   help="Inception FID of the teacher at NFE 4 and 35 and the best student on this many samples "
                        "(≈0.2–0.4 s per image on CPU; 0 skips it)")
    p.add_argument("--jobs", type=int, default=2, help="training runs at once, one CPU thread each")
    p.add_argument("--root", type=Path, default=Path("outputs/bench-distill2d"))
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/distill2d[-<part>].md")
    args = p.parse_args(argv)
    args.out = args.out or Path("benchmarks/distill2d" + ("" if args.part == "all" else f"-{args.part}") + ".md")
    args.root = args.root / time.strftime("%Y%m%d-%H%M%S")
    start = time.time()
    sections = [f"# 2D one-step distillation\n\n`python -m ui3d.benchmarks.distill2d --part {args.part}` "
                f"({args.jobs} training runs at once, one CPU thread each; {torch.get_num_threads()} threads for "
                "sampling and metrics).\n"]
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
    sections.append(f"Wall time of this benchmark: {(time.time() - start) / 60:.1f} min on {os.cpu_count()} CPU cores.\n")
    print(sections[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sections))


if __name__ == "__main__":
    main()
