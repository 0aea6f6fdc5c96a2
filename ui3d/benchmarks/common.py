"""What every benchmark shares."""
from __future__ import annotations

import time

import torch


def matmul_gflops(n: int = 512, repeats: int = 20) -> float:
    """fp32 matmul throughput (GFLOP/s) of this process: the ceiling of every CPU timing (DESIGN §1)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9
