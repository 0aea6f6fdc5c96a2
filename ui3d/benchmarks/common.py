"""What every benchmark shares: the CPU ceiling, a training run through launch.py, and a task scheduler."""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch


def matmul_gflops(n: int = 512, repeats: int = 20) -> float:
    """fp32 matmul throughput (GFLOP/s) of this process: the ceiling of every CPU timing (DESIGN §1)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def train_run(config: str, root: Path, tag: str, overrides: list[str], stage: str) -> tuple[Path, float]:
    """Train `config` through launch.py under `root` with a unique `tag`; (run dir, the stage's training seconds
    from its `done` file). A non-zero exit raises."""
    from ui3d import cli

    code = cli.main(["--config", config, f"exp_root_dir={root}", f"tag={tag}", *overrides])
    if code != 0:
        raise RuntimeError(f"{config} {' '.join(overrides)} exited with {code}")
    (run_dir,) = sorted(p for family in root.iterdir() for p in family.glob(f"{tag}@*"))
    return run_dir, float((run_dir / stage / "done").read_text().split(",")[1].split()[0])


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


@dataclass
class Task:
    fn: Callable
    args: tuple | Callable[[dict], tuple]
    """The arguments, or a function of the finished results (keyed like the tasks) that gives them."""
    deps: tuple[str, ...] = ()


def run_tasks(tasks: dict[str, Task], workers: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the tasks on `workers` processes (one CPU thread each); whenever a worker is free it takes the first
    task, in the dict's order, whose dependencies are done. Returns every task's result and seconds by key."""
    unknown = {d for t in tasks.values() for d in t.deps} - set(tasks)
    if unknown:
        raise KeyError(f"tasks depend on unknown tasks {sorted(unknown)}")
    done, seconds, running, pending = {}, {}, {}, dict(tasks)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(1,)) as pool:
        while pending or running:
            for key in [k for k, t in pending.items() if all(d in done for d in t.deps)]:
                if len(running) >= workers:
                    break
                task = pending.pop(key)
                args = task.args(done) if callable(task.args) else task.args
                running[pool.submit(task.fn, *args)] = (key, time.time())
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                key, start = running.pop(future)
                done[key], seconds[key] = future.result(), time.time() - start
                print(f"[{time.strftime('%H:%M:%S')}] {key}: {seconds[key]:.0f} s", flush=True)
    return done, seconds
