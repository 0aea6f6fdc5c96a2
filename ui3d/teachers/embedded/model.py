"""The embedded teacher's components, in diffusers/transformers classes so one loader serves it and Stable
Diffusion alike: a word-level tokenizer (`tokenizers`, saved as tokenizer.json), a small `CLIPTextModel`, a
pixel-space `UNet2DConditionModel` at 32×32 and a DDPM scheduler."""
from __future__ import annotations

import json
from dataclasses import dataclass

from diffusers import DDPMScheduler, UNet2DConditionModel
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

from ui3d.teachers.embedded.objects import vocabulary

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
MAX_LENGTH = 12
"""Tokens per prompt with [BOS]/[EOS]: "a light blue striped mug, overhead view" is 10."""


@dataclass
class EmbeddedTeacherConfig:
    """Sizes of the embedded teacher (defaults: ~1.7 M UNet parameters, 32×32 RGB)."""

    resolution: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    text_hidden: int = 64
    text_layers: int = 2
    prediction_type: str = "v_prediction"
    num_train_timesteps: int = 1000


def build_tokenizer(words: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the teacher's vocabulary: lower-cased, split on spaces and punctuation,
    wrapped in [BOS] … [EOS] and padded to `MAX_LENGTH`."""
    vocab = {token: i for i, token in enumerate(SPECIALS + (words or vocabulary()))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]",
        model_max_length=MAX_LENGTH,
    )


def build_text_encoder(tokenizer: PreTrainedTokenizerFast, cfg: EmbeddedTeacherConfig) -> CLIPTextModel:
    """A small CLIP text transformer over the word-level vocabulary (random init)."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=2 * cfg.text_hidden,
            num_hidden_layers=cfg.text_layers, num_attention_heads=4, max_position_embeddings=MAX_LENGTH,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, projection_dim=cfg.text_hidden,
        )
    )


def build_unet(cfg: EmbeddedTeacherConfig) -> UNet2DConditionModel:
    """Pixel-space text-conditioned UNet (random init)."""
    n = len(cfg.block_out_channels)
    return UNet2DConditionModel(
        sample_size=cfg.resolution, in_channels=3, out_channels=3, block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block, cross_attention_dim=cfg.text_hidden, attention_head_dim=8,
        norm_num_groups=16,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
    )


def build_scheduler(cfg: EmbeddedTeacherConfig) -> DDPMScheduler:
    """DDPM with the cosine schedule (better than linear at 32×32). v-prediction by default: with ε-prediction
    D = (x − σ ε̂)/α amplifies the network's error by σ/α (13× at t = 950), so the high-noise steps that lay out
    the silhouette were guessed, and the first ε-teacher (1300 steps) drew colour but not shape."""
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
        prediction_type=cfg.prediction_type, clip_sample=False,
    )


MODEL_INDEX = {
    "_class_name": "EmbeddedTeacher",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "scheduler": ["diffusers", "DDPMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
}


def save_teacher(path, unet, scheduler, text_encoder, tokenizer) -> None:
    """Write a diffusers-layout folder (safetensors) that `ui3d.teachers.loader.load_teacher` reads."""
    from pathlib import Path

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(path / "unet", safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(path / "tokenizer")
    scheduler.save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")
