"""Step time of the three text-to-3D guidances on the same render, in one process.

One guidance step = the guidance call (encode, noise, teacher CFG, fake score, discriminator, real images),
one backward of the summed losses, and an Adam step on the guidance's own parameters (LoRA, camera embedding,
discriminator head); the geometry and the renderer are left out. The teacher is the shipped embedded teacher
(32×32) when its weights exist, else a random teacher of the embedded layout at its default size. The real-image
pool of `uniinstruct` is drawn before timing (it is a one-off per prompt and view, cached on disk). Each guidance
has the settings of the shipped config that uses it (dreamfusion.yaml, prolificdreamer.yaml, uniinstruct-fkl.yaml).

    python -m ui3d.benchmarks.guidance_speed     # prints the table, writes benchmarks/guidance_speed.md
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from omegaconf import OmegaConf

from ui3d.config import build, load_config
from ui3d.teachers.embedded import model as embedded
from ui3d.teachers.loader import EMBEDDED_DIR, load_teacher
from ui3d.teachers.teacher import DiffusionTeacher
from ui3d.benchmarks.common import matmul_gflops

CONFIGS = {"sds": "dreamfusion.yaml", "vsd": "prolificdreamer.yaml", "uniinstruct": "uniinstruct-fkl.yaml"}
PROMPT = "a red vase, side view"


def teacher_for_benchmark() -> tuple[DiffusionTeacher, str]:
    """The shipped embedded teacher, or a random one of the same layout and default size."""
    if (EMBEDDED_DIR / "model_index.json").is_file():
        return load_teacher("embedded"), "embedded teacher (shipped weights)"
    torch.manual_seed(0)
    cfg, tok = embedded.EmbeddedTeacherConfig(), embedded.build_tokenizer()
    teacher = DiffusionTeacher(embedded.build_unet(cfg), embedded.build_scheduler(cfg),
                               embedded.build_text_encoder(tok, cfg), tok, name="random-embedded")
    return teacher.requires_grad_(False).eval(), "random embedded-layout teacher (default size; no shipped weights)"


def shipped_settings(name: str) -> dict:
    """The guidance block of the shipped embedded config that uses guidance `name` (what users run), without
    the teacher path; a smaller real-image pool for `uniinstruct` (drawn before timing either way)."""
    block = OmegaConf.to_container(load_config(CONFIGS[name]).cfg.system.guidance, resolve=True)
    block.pop("pretrained_model_name_or_path", None)
    if name == "uniinstruct":
        block.update(real_pool_size=4, real_sampling_steps=10)
    return block


def seconds_per_step(guidance, rgb: torch.Tensor, embeds, c2w, steps: int, after_warm_up=None, sync=None) -> float:
    """Seconds per guidance step (the call, one backward of the summed losses, an Adam step on the guidance's own
    parameters) after one untimed warm-up step; `after_warm_up()` runs once before timing, `sync()` around it."""
    groups = guidance.trainable_parameters()
    optimizer = torch.optim.Adam(groups) if groups else None

    def step(i: int) -> None:
        out = guidance(rgb, embeds, c2w, global_step=i)
        total = sum(v.float() for k, v in out.items() if k.startswith("loss_") and v.requires_grad)
        if optimizer:
            optimizer.zero_grad()
        rgb.grad = None
        total.backward()
        if optimizer:
            optimizer.step()

    step(0)
    for hook in (sync, after_warm_up):
        if hook is not None:
            hook()
    start = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    if sync is not None:
        sync()
    return (time.perf_counter() - start) / steps


def time_guidance(name: str, teacher: DiffusionTeacher, rgb: torch.Tensor, embeds, c2w, steps: int) -> float:
    """Seconds per guidance step with the shipped config's settings."""
    return seconds_per_step(build(name, shipped_settings(name), teacher), rgb, embeds, c2w, steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/guidance_speed.md")
    args = parser.parse_args(argv)
    teacher, description = teacher_for_benchmark()
    side = teacher.resolution
    torch.manual_seed(0)
    rgb = torch.rand(args.batch, side, side, 3, requires_grad=True)
    c2w = torch.eye(4).repeat(args.batch, 1, 1)
    prompts = [PROMPT] * args.batch
    embeds = SimpleNamespace(cond=teacher.encode_text(prompts), uncond=teacher.encode_text([""] * args.batch),
                             prompts=prompts, directions=["side"] * args.batch)
    seconds = {name: time_guidance(name, teacher, rgb, embeds, c2w, args.steps) for name in CONFIGS}
    lines = ["| guidance | ms / step | × SDS | × VSD |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {1e3 * s:.1f} | {s / seconds['sds']:.2f} | {s / seconds['vsd']:.2f} |"
              for name, s in seconds.items()]
    setup = (f"{description}, {side}×{side}, batch {args.batch}, {args.steps} timed steps, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, fp32 matmul {matmul_gflops():.1f} GFLOP/s, "
             f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    table = "\n".join(lines)
    print(setup + "\n\n" + table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        "# Guidance step time\n\n`python -m ui3d.benchmarks.guidance_speed`: one guidance call, one backward of the "
        "summed losses and an Adam step on the guidance's own parameters, on the same render.\n\n"
        f"Setup: {setup}.\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
