"""GPU smoke run: every config in `configs/sd/` for 20 steps of its first stage on a tiny random SD folder, on
CUDA with fp16 teacher weights, through `launch.py`; reports step time and peak memory per config.

    python -m ui3d.benchmarks.gpu_smoke                 # needs CUDA; writes benchmarks/gpu_smoke.md
    python -m ui3d.benchmarks.gpu_smoke --device cpu    # the same harness on the CPU (no fp16, no memory figures)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from ui3d.config import CONFIG_DIR, load_config, stage_names
from ui3d.teachers.random_sd import build_sd_folder

WORDS = ("a", "red", "vase", "side", "front", "back", "overhead", "view")


def smoke_overrides(config: str, folder: Path, root: Path, steps: int, device: str) -> list[str]:
    """A short first stage at the tiny folder's 16 px on `device`."""
    cfg = load_config(config).cfg
    out = [f"steps={steps}", "prompt=a red vase", f"exp_root_dir={root}", "tag=smoke", "data.width=16",
           "data.height=16", "data.eval_width=16", "data.eval_height=16", "data.n_val_views=1", "data.n_test_views=2",
           f"trainer.val_check_interval={steps}", f"trainer.checkpoint_every={steps}", "trainer.log_every_n_steps=1",
           f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
           f"system.guidance.pretrained_model_name_or_path={folder}",
           f"system.prompt_processor.pretrained_model_name_or_path={folder}",
           f"system.prompt_processor.cache_dir={root}/text_cache",
           f"system.guidance.half_precision_weights={'true' if device == 'cuda' else 'false'}"]
    if cfg.system.guidance_type == "uniinstruct":
        out += ["system.guidance.real_pool_size=2", "system.guidance.real_sampling_steps=2",
                f"system.guidance.real_pool_cache_dir={root}/real_pool"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=None, help="default: benchmarks/gpu_smoke.md (gpu_smoke_cpu.md on the CPU)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run on a GPU machine, or --device cpu to check the harness", file=sys.stderr)
        return 2
    from ui3d import cli

    begin, rows = time.time(), []
    configs = sorted(str(p.relative_to(CONFIG_DIR)) for p in (CONFIG_DIR / "sd").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_sd_folder(Path(tmp), WORDS, "tiny")
        for config in configs:
            root = Path(tmp) / config.replace("/", "_")
            stage = stage_names(load_config(config).cfg)[0]
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            code = cli.main(["--config", config, "--stage", stage,
                                *smoke_overrides(config, folder, root, args.steps, args.device)])
            seconds = time.perf_counter() - start
            done = next(root.glob(f"*/smoke@*/{stage}/done"), None)
            train = float(done.read_text().split(",")[1].split()[0]) if done else float("nan")
            peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if args.device == "cuda" else "n/a"
            rows.append(f"| {config} | {code} | {1e3 * train / args.steps:.0f} | {seconds:.1f} | {peak} |")
            print(rows[-1], flush=True)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    table = "\n".join(["| config | exit | ms / step (training) | run s (all) | peak MiB |", "| --- | --- | --- | --- | --- |",
                       *rows])
    setup = f"{name}, torch {torch.__version__}, {args.steps} steps, tiny random SD folder, {time.time() - begin:.0f} s in all"
    out = Path(args.out or ("benchmarks/gpu_smoke.md" if args.device == "cuda" else "benchmarks/gpu_smoke_cpu.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m ui3d.benchmarks.gpu_smoke" + (" --device cpu" if args.device == "cpu" else "")
    out.write_text(f"# GPU smoke run\n\n`{command}`: every `configs/sd/` config, {args.steps} steps of its first "
                   f"stage on a tiny random SD folder (fp16 teacher weights on CUDA).\n\nSetup: {setup}.\n\n{table}\n")
    print(f"\n{setup}\nwrote {out}")
    return 0 if all("| 0 |" in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
