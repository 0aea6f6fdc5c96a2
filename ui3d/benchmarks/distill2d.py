"""2D one-step distillation, measured side by side in one run (DESIGN §4; issue: 2D distillation).

    python -m ui3d.benchmarks.distill2d                  # both parts, writes benchmarks/distill2d.md
    python -m ui3d.benchmarks.distill2d --part mixture   # or --part digits (writes distill2d-<part>.md)
    python -m ui3d.benchmarks.distill2d --part long      # two recipes × 600 steps by Inception FID (distill2d-long.md)
    python -m ui3d.benchmarks.distill2d --part long --long-seeds 0 1 2   # … over 3 seeds, mean ± sd
    python -m ui3d.benchmarks.distill2d --part modes --jobs 1 --out benchmarks/distill2d_modes.md   # a dropped mode

Part 1, the 8-mode ring with unequal weights (exact teacher): one Uni-Instruct run per divergence and seed (same
steps and settings), scored on the EMA generator's samples: modes covered, mode-weight total variation, off-mode
fraction, MMD beside its noise floor. The claim under test: fkl/jkl cover modes better than rkl.

Part "modes", a mode reverse KL provably keeps dropped (`configs/distill2d/mixture-dropped.yaml`: two modes 40 std
apart, weights 50:1, the generator and fake score starting on the heavy mode): Uni-Instruct rkl, fkl, jkl and χ²
with the same settings over the seeds, scored by the light mode's recovered mass (its share of the samples, against
its weight 1/51), modes covered and training time. Not part of `all`.

Part 2, the MNIST teacher (16×16, class-conditional): the teacher at NFE ∈ {1, 2, 4, 8, 16, 35} (DDIM) and every
recipe's one-step student, all scored the same way against held-out MNIST digits in the project classifier's
feature space (FD_clf, precision/recall, class accuracy), with training wall time; a table shaped like the
paper's Table 4 (divergence × GAN × RKL init); Inception FID of the best student, the teacher at NFE 4 and 35 and
a second set of real digits (the floor). Every run goes through `launch.py` (configs/distill2d/).

Every training, teacher sampling and Inception batch is one task; `--jobs` worker processes (one CPU thread
each) take the first ready task in a fixed order (the longest first), so the cores stay busy to the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ui3d import files
from ui3d.benchmarks.common import Task, run_tasks, train_run

DIVERGENCES = ("fkl", "rkl", "jkl", "chi2", "js")
MODE_DIVERGENCES = ("rkl", "fkl", "jkl", "chi2")
NFES = (1, 2, 4, 8, 16, 35)
STUDENTS = (  # (row name, config, extra overrides): every recipe in configs/distill2d, the costliest first;
    # "warm:<row>" starts from that row's run; "warm_fraction" sets rkl_warm_start_steps to 30% of the steps
    ("DMD2", "dmd2.yaml", ()),
    ("Uni-Instruct rkl", "uniinstruct-rkl.yaml", ()),
    ("Uni-Instruct fkl + GAN, RKL init", "uniinstruct-fkl-gan.yaml", ("warm:Uni-Instruct rkl",)),
    ("Uni-Instruct jkl + GAN, RKL init", "uniinstruct-jkl.yaml", ("system.loss.lambda_gan=0.01", "warm:Uni-Instruct rkl")),
    ("Uni-Instruct fkl", "uniinstruct-fkl.yaml", ()),
    ("Uni-Instruct fkl + GAN", "uniinstruct-fkl-gan.yaml", ()),
    ("Uni-Instruct fkl + GAN, MNIST real", "uniinstruct-fkl-gan-real.yaml", ()),
    ("Uni-Instruct fkl + strong GAN, MNIST real", "uniinstruct-fkl-gan-real-strong.yaml", ()),
    ("Uni-Instruct fkl + GAN, RKL → FKL in one run", "uniinstruct-fkl-warmstart.yaml", ("warm_fraction",)),
    ("Uni-Instruct jkl", "uniinstruct-jkl.yaml", ()),
    ("Uni-Instruct χ²", "uniinstruct-chi2.yaml", ()),
    ("Uni-Instruct js", "uniinstruct-js.yaml", ()),
    ("Uni-Instruct fkl (paper form)", "uniinstruct-fkl-paper.yaml", ()),
    ("SiDA", "sida.yaml", ()),
    ("f-distill fkl", "f-distill-fkl.yaml", ()),
    ("f-distill fkl, MNIST real", "f-distill-fkl-real.yaml", ()),
    ("f-distill js", "f-distill-js.yaml", ()),
    ("f-distill hellinger", "f-distill-hellinger.yaml", ()),
    ("SiD", "sid.yaml", ()),
    ("SIM", "sim.yaml", ()),
    ("Diff-Instruct", "diff-instruct.yaml", ()),
    ("DMD", "dmd.yaml", ()),
)
ABLATION = (  # Table 4's shape: divergence × GAN × RKL init, rows drawn from STUDENTS
    ("rkl", "no", "no", "Uni-Instruct rkl"),
    ("fkl", "no", "no", "Uni-Instruct fkl"),
    ("fkl", "yes", "no", "Uni-Instruct fkl + GAN"),
    ("fkl", "yes", "yes", "Uni-Instruct fkl + GAN, RKL init"),
    ("jkl", "no", "no", "Uni-Instruct jkl"),
    ("jkl", "yes", "yes", "Uni-Instruct jkl + GAN, RKL init"),
)
FID_TEACHER_NFES = (4, 35)
CHUNK = 200  # images per Inception task


# --- what the worker processes run (one CPU thread each) ------------------------------------------------------
def run(config: str, root: Path, tag: str, overrides: list[str]) -> tuple[Path, dict, float]:
    """Train one distill2d config through launch.py; (run dir, save/metrics.json, training seconds)."""
    run_dir, seconds = train_run(f"distill2d/{config}", root, tag, overrides, "main")
    return run_dir, json.loads((run_dir / "main" / "save" / "metrics.json").read_text()), seconds


def teacher_row(nfe: int, n: int, seed: int = 0) -> tuple[torch.Tensor, dict, float]:
    """n DDIM samples of the digits teacher at `nfe` steps, their digit metrics and sampling seconds."""
    from ui3d.distill2d.evaluate import digit_metrics, mnist_reference
    from ui3d.distill2d.teachers import UNetTeacher

    start = time.time()
    x, labels = UNetTeacher(UNetTeacher.Config()).sample(n, nfe, torch.Generator().manual_seed(seed))
    return x, digit_metrics(x, labels, mnist_reference(n)), time.time() - start


_INCEPTION = None


def inception_chunk(images: torch.Tensor) -> torch.Tensor:
    """InceptionV3 pool3 features of images in [−1, 1] (the network loaded once per worker)."""
    global _INCEPTION
    from ui3d.metrics.fid import InceptionFeatures

    _INCEPTION = _INCEPTION or InceptionFeatures()
    return _INCEPTION.features(images, value_range=(-1, 1))


# --- the two parts: their tasks, then their tables from the results -----------------------------------------
def mixture_tasks(args) -> dict[str, Task]:
    root = args.root / "mixture"
    return {f"mixture {div} s{seed}": Task(run, (f"uniinstruct-{div}.yaml", root, f"{div}-s{seed}",
                                                  ["extends=mixture.yaml", f"seed={seed}", f"steps={args.mixture_steps}"]))
            for div in DIVERGENCES for seed in args.seeds}


def mixture_table(args, done: dict) -> str:
    rows = []
    for div in DIVERGENCES:
        found = [done[f"mixture {div} s{seed}"] for seed in args.seeds]
        s = [metrics["samples"] for _, metrics, _ in found]
        covered = [m["modes_covered"] for m in s]
        tv = [m["mode_tv"] for m in s]
        rows.append(
            f"| {div} | {' / '.join(map(str, covered))} | {statistics.mean(tv):.3f} ± {statistics.pstdev(tv):.3f} "
            f"| {statistics.mean(m['off_mode'] for m in s):.3f} | {statistics.mean(m['recall'] for m in s):.3f} "
            f"| {statistics.mean(m['mmd'] / m['mmd_floor'] for m in s):.0f} "
            f"| {statistics.mean(t for _, _, t in found):.0f} |")
    header = ("| divergence | modes covered (of 8), per seed | mode-weight TV (mean ± sd) | off-mode fraction "
              "| recall | MMD / noise floor | train s / run |\n|" + " --- |" * 7)
    return "\n".join([header, *rows])


def modes_tasks(args) -> dict[str, Task]:
    root = args.root / "modes"
    return {f"modes {div} s{seed}": Task(run, (f"uniinstruct-{div}.yaml", root, f"{div}-s{seed}",
                                               ["extends=mixture-dropped.yaml", f"seed={seed}",
                                                f"trainer.max_steps={args.modes_steps}"]))
            for div in MODE_DIVERGENCES for seed in args.seeds}


def _mean_sd(values: list[float], digits: int = 4) -> str:
    return f"{statistics.mean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}"


def modes_table(args, done: dict) -> str:
    rows, weight = [], None
    for div in MODE_DIVERGENCES:
        found = [done[f"modes {div} s{seed}"] for seed in args.seeds]
        s = [metrics["samples"] for _, metrics, _ in found]
        weight = s[0]["mode_weight"]
        light, heavy = weight.index(min(weight)), weight.index(max(weight))
        mass = [m["mode_mass"][light] for m in s]
        rows.append(
            f"| {div} | {_mean_sd(mass)} | {' / '.join(f'{x:.4f}' for x in mass)} "
            f"| {' / '.join(str(m['modes_covered']) for m in s)} | {_mean_sd([m['mode_mass'][heavy] for m in s], 3)} "
            f"| {_mean_sd([m['off_mode'] for m in s], 3)} | {statistics.mean(t for _, _, t in found):.0f} |")
    header = (f"| divergence | light-mode mass (mean ± sd; its weight {min(weight):.4f}) | per seed "
              f"| modes covered (of {len(weight)}), per seed | heavy-mode mass (weight {max(weight):.4f}) "
              "| off-mode fraction | train s / run |\n|" + " --- |" * 7)
    return "\n".join([header, *rows])


def _tag(name: str) -> str:
    """A run tag from a row name: ASCII letters, digits and single dashes."""
    name = name.lower().replace("+", "plus").replace("χ²", "chi2").replace("→", "to")
    return "-".join("".join(c if c.isascii() and c.isalnum() else " " for c in name).split())


def digits_tasks(args) -> dict[str, Task]:
    from ui3d.distill2d.evaluate import mnist_reference

    tasks, root = {}, args.root / "digits"
    for name, config, extra in STUDENTS:
        overrides = [f"steps={args.digit_steps}", f"system.n_eval_samples={args.samples}", *args.digit_overrides]
        deps = tuple(item[5:] for item in extra if item.startswith("warm:"))
        overrides += [item for item in extra if "=" in item]
        if "warm_fraction" in extra:
            overrides.append(f"system.rkl_warm_start_steps={round(0.3 * args.digit_steps)}")
        job = (config, root, _tag(name), overrides)
        tasks[name] = Task(run, job if not deps else
                           lambda done, job=job, deps=deps: (*job[:3], job[3] + [f"system.warm_start={done[deps[0]][0]}"]),
                           deps)
    for nfe in NFES:
        tasks[f"teacher@{nfe}"] = Task(teacher_row, (nfe, args.samples))
    if args.fid_samples:
        n = args.fid_samples
        tasks.update(inception_tasks("real", mnist_reference(2 * n), 2 * n))  # the reference and the floor's half
        for nfe in FID_TEACHER_NFES:
            tasks.update(inception_tasks(f"teacher@{nfe}", lambda done, nfe=nfe: done[f"teacher@{nfe}"][0], n,
                                         (f"teacher@{nfe}",)))
        tasks.update(inception_tasks("best", lambda done: load_samples(done[best_student(done)][0]), n,
                                     tuple(name for name, _, _ in STUDENTS)))
    return tasks


def inception_tasks(key: str, images: torch.Tensor | Callable[[dict], torch.Tensor], n: int,
                    deps: tuple[str, ...] = ()) -> dict[str, Task]:
    """Tasks `inception <key> <i>`: Inception features of the first n images in chunks of CHUNK; `images` is a
    tensor or a function of the finished results (then `deps` names the tasks it needs)."""
    def task(i: int) -> Task:
        if callable(images):
            return Task(inception_chunk, lambda done: (images(done)[:n][i : i + CHUNK],), deps)
        return Task(inception_chunk, (images[:n][i : i + CHUNK],))

    return {f"inception {key} {i}": task(i) for i in range(0, n, CHUNK)}


def inception_features(done: dict, key: str, n: int) -> torch.Tensor:
    return torch.cat([done[f"inception {key} {i}"] for i in range(0, n, CHUNK)])


def real_reference(done: dict, n: int) -> tuple[torch.Tensor, float]:
    """The Inception features of the n reference digits, and the FID of the other n real digits to them (the
    floor at this n)."""
    from ui3d.metrics.fid import fid

    real = inception_features(done, "real", 2 * n)
    return real[:n], fid(real[n:], real[:n])


def best_student(done: dict) -> str:
    return min((name for name, _, _ in STUDENTS), key=lambda name: done[name][1]["samples"]["fd_clf"])


def load_samples(run_dir: Path) -> torch.Tensor:
    """A digits run's evaluated samples (save/samples.pt, uint8) in [−1, 1]."""
    return files.torch_load(run_dir / "main" / "save" / "samples.pt", "samples")["images"].float() / 127.5 - 1


def digit_row(name: str, metrics: dict, seconds: str, nfe: str) -> str:
    return (f"| {name} | {nfe} | {metrics['fd_clf']:.2f} | {metrics['precision']:.3f} | {metrics['recall']:.3f} "
            f"| {metrics.get('class_acc', float('nan')):.3f} | {metrics['classes_covered']} | {seconds} |")


def digits_table(args, done: dict, seconds: dict) -> str:
    header = ("| model | NFE | FD_clf ↓ | precision | recall | class acc. | classes covered | train s |\n|"
              + " --- |" * 8)
    rows, scores = [], {}
    for nfe in NFES:
        _, metrics, spent = done[f"teacher@{nfe}"]
        scores[f"teacher@{nfe}"] = metrics["fd_clf"]
        rows.append(digit_row("teacher (DDIM)", metrics, f"({spent:.0f} s sampling)", str(nfe)))
    for name, _, _ in STUDENTS:
        _, metrics, spent = done[name]
        scores[name] = metrics["samples"]["fd_clf"]
        rows.append(digit_row(name, metrics["samples"], f"{spent:.0f}", "1"))
    ablation = ["| divergence | GAN | RKL init | FD_clf ↓ |", "| --- | --- | --- | --- |"]
    ablation += [f"| {d} | {g} | {i} | {scores[row]:.2f} |" for d, g, i, row in ABLATION]
    best = best_student(done)
    verdict = (f"Best student: {best}, FD_clf {scores[best]:.2f}; teacher at NFE 4: {scores['teacher@4']:.2f}, "
               f"NFE 35: {scores['teacher@35']:.2f}. Targets: student < teacher@4 "
               f"({'met' if scores[best] < scores['teacher@4'] else 'not met'}), "
               f"student ≤ 1.5 × teacher@35 ({'met' if scores[best] <= 1.5 * scores['teacher@35'] else 'not met'}).")
    out = ["\n".join([header, *rows]), verdict, "Table 4 shape (FD_clf of the one-step student):", "\n".join(ablation)]
    if args.fid_samples:
        out.append(inception_fid_table(args.fid_samples, done, seconds))
    return "\n\n".join(out)


def inception_fid_table(n: int, done: dict, seconds: dict) -> str:
    """FID of the best student and the teacher at NFE 4 and 35 (n samples each) against n MNIST test digits,
    beside the FID between two disjoint sets of n test digits (the floor at this n)."""
    from ui3d.metrics.fid import fid

    ref, floor = real_reference(done, n)
    sets = {f"best student ({best_student(done)}), NFE 1": inception_features(done, "best", n),
            **{f"teacher (DDIM), NFE {nfe}": inception_features(done, f"teacher@{nfe}", n) for nfe in FID_TEACHER_NFES}}
    lines = [f"Inception FID ({n} samples per row against {n} MNIST test digits; 16×16 digits resized to 299×299):",
             "", "| model | FID ↓ |", "| --- | --- |", f"| real test digits (the other {n}: the floor) | {floor:.2f} |"]
    lines += [f"| {name} | {fid(f, ref):.2f} |" for name, f in sets.items()]
    spent = sum(t for k, t in seconds.items() if k.startswith("inception"))
    lines += ["", f"({len(sets) + 2} × {n} images through InceptionV3: {spent:.0f} worker-seconds.)"]
    return "\n".join(lines)


def long_tasks(args) -> dict[str, Task]:
    """`--long-configs` trained `--long-steps` steps once per `--long-seeds` seed, with Inception features of their
    samples, of the teacher at NFE 35 (sampled with each seed, or once with `--long-teacher-once`) and of 2 ×
    `--fid-samples` real digits (once)."""
    from ui3d.distill2d.evaluate import mnist_reference

    n, root = args.fid_samples, args.root / "long"
    overrides = [f"steps={args.long_steps}", f"system.n_eval_samples={n}"]
    tasks = {f"long {c} s{seed}": Task(run, (c, root, f"{_tag(c.removesuffix('.yaml'))}-{args.long_steps}-s{seed}",
                                             [*overrides, f"seed={seed}"]))
             for seed in args.long_seeds for c in args.long_configs}
    teacher_seeds = sorted({teacher_seed(args, seed) for seed in args.long_seeds})
    tasks.update({f"teacher@35 s{seed}": Task(teacher_row, (35, n, seed)) for seed in teacher_seeds})
    tasks.update(inception_tasks("real", mnist_reference(2 * n), 2 * n))
    for seed in teacher_seeds:
        key = f"teacher@35 s{seed}"
        tasks.update(inception_tasks(key, lambda done, key=key: done[key][0], n, (key,)))
    for seed in args.long_seeds:
        for c in args.long_configs:
            key = f"long {c} s{seed}"
            tasks.update(inception_tasks(key, lambda done, key=key: load_samples(done[key][0]), n, (key,)))
    return tasks


def teacher_seed(args, seed: int) -> int:
    """The seed of the teacher samples a student of seed `seed` is compared with."""
    return args.long_seeds[0] if args.long_teacher_once else seed


def long_table(args, done: dict) -> str:
    """The long part's table from the finished tasks: per seed, each model's digit metrics and Inception FID (and
    the student's FID over the teacher's of the same seed), summarised by `long_summary`."""
    from ui3d.metrics.fid import fid

    n = args.fid_samples
    ref, floor = real_reference(done, n)

    def scores(key: str, metrics: dict, seconds: float) -> dict:
        return {**{k: metrics[k] for k in ("fd_clf", "precision", "recall")}, "seconds": seconds,
                "fid": fid(inception_features(done, key, n), ref)}

    teacher = {}
    for seed in sorted({teacher_seed(args, s) for s in args.long_seeds}):
        _, metrics, spent = done[f"teacher@35 s{seed}"]
        teacher[seed] = scores(f"teacher@35 s{seed}", metrics, spent)
    students = {}
    for c in args.long_configs:
        students[c] = []
        for seed in args.long_seeds:
            _, metrics, spent = done[f"long {c} s{seed}"]
            row = scores(f"long {c} s{seed}", metrics["samples"], spent)
            students[c].append({**row, "fid_ratio": row["fid"] / teacher[teacher_seed(args, seed)]["fid"]})
    return long_summary(floor, list(teacher.values()), students, args.long_steps, args.long_seeds)


def _cell(values: list[float], digits: int) -> str:
    """One value as is; several as mean ± sd (sample sd, n − 1)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def long_summary(floor: float, teacher: list[dict], students: dict[str, list[dict]], steps: int,
                 seeds: list[int]) -> str:
    """The long part's table: a row for the FID floor, the teacher at NFE 35 and each student, every cell the
    value (one seed) or mean ± sd over the seeds; with several seeds, each model's FID per seed below it.
    `teacher` holds one dict per teacher sampling seed and `students` a list per config, one dict per seed (keys
    fd_clf, precision, recall, fid, seconds, and fid_ratio for students)."""
    def col(rows: list[dict], key: str) -> list[float]:
        return [r[key] for r in rows]

    def cells(rows: list[dict]) -> str:
        return " | ".join(_cell(col(rows, key), digits)
                          for key, digits in (("fd_clf", 2), ("precision", 3), ("recall", 3), ("fid", 2)))

    spent = statistics.mean(col(teacher, "seconds"))
    rows = [f"| real test digits (the floor) | — | — | — | — | {floor:.2f} | — | — |",
            f"| teacher (DDIM), NFE 35 | — | {cells(teacher)} | 1.00 | ({spent:.0f} s sampling) |"]
    rows += [f"| {c} | {steps} | {cells(found)} | {_cell(col(found, 'fid_ratio'), 2)} "
             f"| {statistics.mean(col(found, 'seconds')):.0f} |" for c, found in students.items()]
    header = ("| model | steps | FD_clf ↓ | precision | recall | Inception FID ↓ | FID / teacher@35 | train s |\n|"
              + " --- |" * 8)
    table = "\n".join([header, *rows])
    if len(seeds) == 1:
        return table
    per_seed = [f"| model | {' | '.join(f'seed {s}' for s in seeds)} |", "|" + " --- |" * (len(seeds) + 1)]
    teacher_fids = col(teacher, "fid") if len(teacher) == len(seeds) else col(teacher, "fid") * len(seeds)
    per_seed.append(f"| teacher (DDIM), NFE 35 | {' | '.join(f'{x:.2f}' for x in teacher_fids)} |")
    per_seed += [f"| {c} | {' | '.join(f'{x:.2f}' for x in col(found, 'fid'))} |" for c, found in students.items()]
    below = [f"{c}: {sum(r['fid_ratio'] < 1 for r in found)} of {len(found)}" for c, found in students.items()]
    return "\n\n".join([table, "Inception FID per seed:", "\n".join(per_seed),
                         "Seeds where the student's FID is below the teacher's: " + "; ".join(below) + "."])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("mixture", "digits", "all", "long", "modes"), default="all",
                   help="all = mixture + digits; long = a few recipes trained longer, scored by Inception FID; "
                        "modes = rkl/fkl/jkl/chi2 on a mode the generator starts without (mixture-dropped.yaml)")
    p.add_argument("--long-configs", nargs="+", default=["f-distill-fkl.yaml", "uniinstruct-fkl-gan.yaml"])
    p.add_argument("--long-steps", type=int, default=600)
    p.add_argument("--long-seeds", type=int, nargs="+", default=[0],
                   help="--part long trains each config once per seed; the table gives mean ± sd over them")
    p.add_argument("--long-teacher-once", action="store_true",
                   help="--part long samples the teacher with the first seed only (else once per seed)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mixture-steps", type=int, default=1500)
    p.add_argument("--modes-steps", type=int, default=2500, help="generator steps of each --part modes run")
    p.add_argument("--digit-steps", type=int, default=100)
    p.add_argument("--digit-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides for every digits student (e.g. system.batch_size=64)")
    p.add_argument("--samples", type=int, default=1000, help="samples per digits row (and mixture eval)")
    p.add_argument("--fid-samples", type=int, default=1000,
                   help="Inception FID of the teacher at NFE 4 and 35 and the best student on this many samples "
                        "(≈0.3 s per image on one CPU thread; 0 skips it)")
    p.add_argument("--jobs", type=int, default=2, help="tasks at once, one process with one CPU thread each")
    p.add_argument("--root", type=Path, default=Path("outputs/bench-distill2d"))
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/distill2d[-<part>].md")
    args = p.parse_args(argv)
    if args.part in ("digits", "all") and args.fid_samples > args.samples:
        p.error(f"--fid-samples {args.fid_samples} is more than the {args.samples} samples each digits row keeps; "
                f"raise --samples or lower --fid-samples")
    args.out = args.out or Path("benchmarks/distill2d" + ("" if args.part == "all" else f"-{args.part}") + ".md")
    args.root = args.root / time.strftime("%Y%m%d-%H%M%S")
    start = time.time()
    tasks = {}  # the digits students first: they are the longest tasks and the rest can fill in around them
    tasks.update(digits_tasks(args) if args.part in ("digits", "all") else {})
    tasks.update(mixture_tasks(args) if args.part in ("mixture", "all") else {})
    tasks.update(long_tasks(args) if args.part == "long" else {})
    tasks.update(modes_tasks(args) if args.part == "modes" else {})
    done, seconds = run_tasks(tasks, args.jobs)
    sections = [f"# 2D one-step distillation\n\n`python -m ui3d.benchmarks.distill2d --part {args.part}"
                + (f" --digit-steps {args.digit_steps}" if args.part in ("digits", "all") else "")
                + (f" --long-steps {args.long_steps} --long-configs {' '.join(args.long_configs)}"
                   + (f" --long-seeds {' '.join(map(str, args.long_seeds))}" if args.long_seeds != [0] else "")
                   + (" --long-teacher-once" if args.long_teacher_once else "")
                   if args.part == "long" else "")
                + (f" --digit-overrides {' '.join(args.digit_overrides)}" if args.digit_overrides else "")
                + (f" --modes-steps {args.modes_steps} --seeds {' '.join(map(str, args.seeds))}"
                   if args.part == "modes" else "")
                + f"`: every training, teacher sampling and Inception batch is one task; {args.jobs} tasks at "
                "once, one CPU thread each.\n"]
    if args.part in ("mixture", "all"):
        sections.append(f"## 8-mode ring, unequal weights (8:7:…:1), {args.mixture_steps} steps, seeds "
                        f"{args.seeds}\n\n{mixture_table(args, done)}\n")
    if args.part in ("digits", "all"):
        sections.append(f"## MNIST 16×16, class-conditional teacher, students {args.digit_steps} steps, "
                        f"{args.samples} samples per row against {args.samples} test digits\n\n"
                        f"{digits_table(args, done, seconds)}\n")
    if args.part == "modes":
        sections.append(f"## A dropped mode: two modes 40 std apart, weights 50:1, the generator started on the heavy "
                        f"one; Uni-Instruct, {args.modes_steps} steps, seeds {args.seeds}\n\n"
                        f"{modes_table(args, done)}\n")
    if args.part == "long":
        seeds = ("" if len(args.long_seeds) == 1 else
                 f", seeds {args.long_seeds} (mean ± sd; the teacher sampled "
                 + (f"once, seed {args.long_seeds[0]}" if args.long_teacher_once else "once per seed") + ")")
        sections.append(f"## MNIST 16×16: students trained {args.long_steps} steps, Inception FID on "
                        f"{args.fid_samples} samples against {args.fid_samples} test digits{seeds}\n\n"
                        f"{long_table(args, done)}\n")
    sections.append(f"Wall time of this benchmark: {(time.time() - start) / 60:.1f} min on {os.cpu_count()} CPU cores "
                    f"({sum(seconds.values()) / 60:.1f} task-minutes).\n")
    text = "\n".join(sections)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
