"""Stable-Diffusion-shaped teacher folders with random weights (the diffusers dummy-components pattern): the
tests' tiny folder and the benchmarks' SD-1.5-shaped one, written with `save_pretrained` (safetensors), loadable
by `ui3d.teachers.loader.load_teacher`. Nothing is downloaded."""
from __future__ import annotations

import json
from pathlib import Path

import torch

SHAPES = {
    "tiny": {  # 8×8 latents, 16 px images
        "unet": dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, cross_attention_dim=16,
                     attention_head_dim=4, norm_num_groups=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                     up_block_types=("CrossAttnUpBlock2D", "UpBlock2D")),
        "vae": dict(block_out_channels=(8, 16), norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 2,
                    up_block_types=("UpDecoderBlock2D",) * 2),
        "text": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2),
        "max_length": 8,
    },
    "sd15": {  # Stable Diffusion 1.5: 64×64 latents, 512 px images, CLIP ViT-L/14 text encoder
        "unet": dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, sample_size=64,
                     cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32),
        "vae": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, sample_size=512,
                    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
        "text": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
        "max_length": 77,
    },
}


def clip_tokenizer(folder: Path, words=("a", "vase", "red"), max_length: int = 8):
    """A CLIP BPE tokenizer over a handful of whole words (no merges)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{f"{w}</w>": i + 2 for i, w in enumerate(words)}}
    vocab["!"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)


def build_sd_folder(root: Path, words=("a", "vase", "red"), shape: str = "tiny") -> Path:
    """`root/<shape>-sd`: UNet, VAE, CLIP text encoder of `SHAPES[shape]`, PNDM scheduler; random after
    `manual_seed(0)`."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    spec = SHAPES[shape]
    torch.manual_seed(0)
    unet = UNet2DConditionModel(in_channels=4, out_channels=4, **spec["unet"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **spec["vae"])
    tok = clip_tokenizer(root / "tokenizer-src", words, spec["max_length"])
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), max_position_embeddings=spec["max_length"],
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1, **spec["text"]))
    folder = root / f"{shape}-sd"
    for name, part in [("unet", unet), ("vae", vae), ("text_encoder", text)]:
        part.save_pretrained(folder / name)
    PNDMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(folder / "scheduler")
    tok.save_pretrained(folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": [None, None], "feature_extractor": [None, None],
    }))
    return folder
