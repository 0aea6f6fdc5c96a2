"""Step time and peak memory of SDS, VSD and Uni-Instruct on a Stable-Diffusion-1.5-shaped teacher.

A random SD-1.5-shaped folder (UNet 320-640-1280-1280, VAE, 12-layer CLIP; nothing downloaded) is loaded through
`ui3d.teachers.loader` on the device found (CUDA, else CPU). Each row times one guidance step (the guidance call,
one backward of the summed losses, an Adam step on the guidance's own parameters) on 512×512 renders (64×64
latents), with the settings of `configs/sd/{dreamfusion,prolificdreamer,uniinstruct-fkl}.yaml`, for batch 1
and 4, fp32 and fp16 teacher weights (fp16 on CUDA only), and without / with the memory options (SDPA attention,
attention slicing, channels-last, VAE slicing, text-encoder offload). Peak memory is CUDA's max allocated.

    python -m ui3d.benchmarks.sd_step            # the SD-1.5 shape on the device found; writes benchmarks/sd_step.md
    python -m ui3d.benchmarks.sd_step --quick    # the tests' tiny SD shape (a CPU check of the harness)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from ui3d.benchmarks.guidance_speed import seconds_per_step
from ui3d.config import build, load_config
from ui3d.teachers.loader import load_teacher
from ui3d.teachers.random_sd import build_sd_folder

CONFIGS = {"sds": "sd/dreamfusion.yaml", "vsd": "sd/prolificdreamer.yaml", "uniinstruct": "sd/uniinstruct-fkl.yaml"}
MEMORY_OPTIONS = {"enable_memory_efficient_attention": True, "enable_attention_slicing": True,
                  "enable_channels_last_format": True, "enable_vae_slicing": True, "offload_text_encoder": True}
WORDS = ("a", "red", "vase", "side", "view")


def settings(name: str, memory: bool) -> dict:
    """The guidance block of the SD config that uses guidance `name`, memory options off or on."""
    block = OmegaConf.to_container(load_config(CONFIGS[name]).cfg.system.guidance, resolve=True)
    for key in ("pretrained_model_name_or_path", "half_precision_weights", *MEMORY_OPTIONS):
        block.pop(key, None)
    if name == "uniinstruct":
        block.update(real_pool_size=4, real_sampling_steps=2)
    return {**block, **({k: v for k, v in MEMORY_OPTIONS.items()} if memory else {})}


def measure(name: str, folder: Path, device: torch.device, dtype: torch.dtype, batch: int, memory: bool,
            steps: int) -> tuple[float, float | None]:
    """(seconds per step after one untimed warm-up step, peak CUDA memory in GiB or None on CPU)."""
    teacher = load_teacher(str(folder), dtype=dtype)
    guidance = build(name, settings(name, memory), teacher)
    guidance.apply(lambda t: t.to(device))
    side = teacher.resolution
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(batch, side, side, 3, generator=g).to(device).requires_grad_(True)
    c2w = torch.eye(4).repeat(batch, 1, 1).to(device)
    prompts = ["a red vase, side view"] * batch
    embeds = SimpleNamespace(cond=teacher.encode_text(prompts), uncond=teacher.encode_text([""] * batch),
                             prompts=prompts, directions=["side"] * batch)
    cuda = device.type == "cuda"
    seconds = seconds_per_step(guidance, rgb, embeds, c2w, steps,
                               after_warm_up=torch.cuda.reset_peak_memory_stats if cuda else None,
                               sync=torch.cuda.synchronize if cuda else None)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    del guidance, teacher
    return seconds, peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tiny SD shape (seconds on a CPU)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--out", default=None, help="default: benchmarks/sd_step.md (sd_step_quick.md with --quick)")
    args = parser.parse_args(argv)
    begin = time.time()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = "tiny" if args.quick else "sd15"
    dtypes = [torch.float32] + ([torch.float16] if device.type == "cuda" else [])
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_sd_folder(Path(tmp), WORDS, shape)
        for batch in map(int, args.batches.split(",")):
            for dtype in dtypes:
                for memory in (False, True):
                    for name in CONFIGS:
                        seconds, peak = measure(name, folder, device, dtype, batch, memory, args.steps)
                        results[name, batch, dtype, memory] = seconds
                        ratio = seconds / results["vsd", batch, dtype, memory] if name != "sds" else float("nan")
                        rows.append(f"| {name} | {batch} | {str(dtype).split('.')[-1]} | {'on' if memory else 'off'} | "
                                    f"{1e3 * seconds:.1f} | {'n/a' if peak is None else f'{peak:.2f}'} | "
                                    f"{'' if name == 'sds' else f'{ratio:.2f}'} |")
                        print(rows[-1], flush=True)
    table = "\n".join(["| guidance | batch | teacher weights | memory options | ms / step | peak GiB | × VSD |",
                       "| --- | --- | --- | --- | --- | --- | --- |", *rows])
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    setup = (f"{shape} SD shape, random weights, {name}, torch {torch.__version__}, {args.steps} timed steps per row, "
             f"{time.time() - begin:.0f} s in all")
    out = Path(args.out or ("benchmarks/sd_step_quick.md" if args.quick else "benchmarks/sd_step.md"))
    command = "python -m ui3d.benchmarks.sd_step" + (" --quick" if args.quick else "")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# SD guidance step time and memory\n\n`{command}`: one guidance call, one backward of the summed "
                   f"losses and an Adam step on the guidance's own parameters, on 512×512 renders (the quick shape: "
                   f"16×16). The goal is Uni-Instruct ≤ 1.3× VSD (the paper reports about 2× ProlificDreamer).\n\n"
                   f"Setup: {setup}.\n\n{table}\n")
    print(f"\n{setup}\nwrote {out}")


if __name__ == "__main__":
    main()
