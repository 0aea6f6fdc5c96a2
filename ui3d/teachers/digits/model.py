"""The digits teacher's components: a class-conditional pixel-space `UNet2DModel` at 16×16 (one channel, MNIST in
[-1, 1]) and a DDPM scheduler, in diffusers classes so they save and load as an ordinary diffusers folder."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from diffusers import DDPMScheduler, UNet2DModel

NUM_DIGITS = 10
NULL_LABEL = NUM_DIGITS
"""Class index of "no label": the unconditional branch of classifier-free guidance."""

MODEL_INDEX = {"_class_name": "DigitsTeacher", "unet": ["diffusers", "UNet2DModel"],
               "scheduler": ["diffusers", "DDPMScheduler"]}


@dataclass
class DigitsTeacherConfig:
    """Sizes of the digits teacher (defaults: 1.11 M UNet parameters, 16×16×1)."""

    resolution: int = 16
    """Side of the square images, in pixels."""
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    """Channels per resolution level (16, 8, 4 pixels)."""
    layers_per_block: int = 1
    """ResNet blocks per level."""
    attention: bool = True
    """Self-attention at the lowest resolution (last down/first up block and the mid block)."""
    prediction_type: str = "v_prediction"
    """What the network predicts; v keeps the high-noise steps (which lay out the digit) well conditioned."""
    num_train_timesteps: int = 1000
    """Discrete DDPM timesteps."""


def build_unet(cfg: DigitsTeacherConfig) -> UNet2DModel:
    """Class-conditional UNet (random init); class embeddings for the 10 digits and `NULL_LABEL`."""
    n = len(cfg.block_out_channels)
    down, up = ["DownBlock2D"] * n, ["UpBlock2D"] * n
    if cfg.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=cfg.resolution, in_channels=1, out_channels=1, block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block, down_block_types=tuple(down), up_block_types=tuple(up),
        add_attention=cfg.attention, attention_head_dim=16, norm_num_groups=16, num_class_embeds=NUM_DIGITS + 1,
    )


def build_scheduler(cfg: DigitsTeacherConfig) -> DDPMScheduler:
    """DDPM with the cosine schedule (Nichol & Dhariwal 2021), which suits small images better than linear."""
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type=cfg.prediction_type, clip_sample=False)


def save_teacher(path: Path, unet: UNet2DModel, scheduler: DDPMScheduler) -> None:
    """Write the diffusers-layout folder (`unet/` safetensors, `scheduler/`, model_index.json)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(path / "unet", safe_serialization=True)
    scheduler.save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")
