"""Tiny random teachers built in memory (the diffusers dummy-components pattern), shared by the loader and the
guidance tests: nothing is downloaded, every folder is written under a pytest temporary directory."""
from __future__ import annotations

from pathlib import Path

import torch

from ui3d.teachers.embedded import model as embedded
from ui3d.teachers.random_sd import build_sd_folder, clip_tokenizer

SD_WORDS = ("a", "vase", "red", "side", "front", "back", "overhead", "view")


def tiny_clip_tokenizer(folder: Path, words=("a", "vase", "red")):
    """A CLIP BPE tokenizer over a handful of whole words (no merges), 8 tokens per prompt."""
    return clip_tokenizer(folder, words, 8)


def build_tiny_sd_folder(root: Path, words=("a", "vase", "red")) -> Path:
    """A Stable-Diffusion-shaped folder: 4-channel latent UNet (8×8 latents, 16 px images), 2-block VAE,
    2-layer CLIP, PNDM scheduler, all random after `manual_seed(0)`."""
    return build_sd_folder(root, words, "tiny")


def tiny_embedded_config(resolution: int = 32) -> embedded.EmbeddedTeacherConfig:
    """The embedded teacher's layout at a tiny width (pixel space, word-level tokenizer). 32 channels, not 16:
    with the layout's 16 norm groups a 16-channel UNet normalises away its time (and camera) embedding."""
    return embedded.EmbeddedTeacherConfig(resolution=resolution, block_out_channels=(32, 32), text_hidden=16,
                                          text_layers=1)


def build_tiny_embedded_folder(folder: Path, resolution: int = 32) -> Path:
    """An embedded-layout teacher folder (random weights after `manual_seed(0)`), read by `load_teacher`."""
    torch.manual_seed(0)
    cfg = tiny_embedded_config(resolution)
    tok = embedded.build_tokenizer()
    embedded.save_teacher(folder, embedded.build_unet(cfg), embedded.build_scheduler(cfg),
                          embedded.build_text_encoder(tok, cfg), tok)
    return folder


def build_tiny_unet_folder(folder: Path, classes: int | None = 11, resolution: int = 8) -> Path:
    """A random class-conditional 1-channel `UNet2DModel` + v-prediction DDPM scheduler (the digits teacher's
    layout: `unet/`, `scheduler/`); `classes` counts the null label."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=resolution, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4, attention_head_dim=8, num_class_embeds=classes,
    )
    unet.save_pretrained(folder / "unet")
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                  prediction_type="v_prediction").save_pretrained(folder / "scheduler")
    return folder
