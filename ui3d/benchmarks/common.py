"""What every benchmark shares."""
from __future__ import annotations

import time
from pathlib import Path

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
    import launch

    code = launch.main(["--config", config, f"exp_root_dir={root}", f"tag={tag}", *overrides])
    if code != 0:
        raise RuntimeError(f"{config} {' '.join(overrides)} exited with {code}")
    (run_dir,) = sorted(p for family in root.iterdir() for p in family.glob(f"{tag}@*"))
    return run_dir, float((run_dir / stage / "done").read_text().split(",")[1].split()[0])
