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


def _ldm_unet_key(key: str, layers_per_block: int, up_attentions: set[int]) -> str:
    """A diffusers `UNet2DConditionModel` key in the original (LDM) layout's names."""
    import re

    resnet = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
              "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}

    def res(rest: str) -> str:
        head, _, tail = rest.partition(".")
        return f"{resnet[head]}.{tail}"

    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for old, new in fixed.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    n = layers_per_block
    if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"input_blocks.{1 + int(m[1]) * (n + 1) + int(m[2])}.0.{res(m[3])}"
    if m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
        return f"input_blocks.{1 + int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(int(m[1]) + 1) * (n + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{res(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.0.{res(m[3])}"
    if m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
        return f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        i = int(m[1])
        return f"output_blocks.{i * (n + 1) + n}.{2 if i in up_attentions else 1}.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key}")


def _ldm_vae_key(key: str, n_blocks: int) -> str:
    """A diffusers `AutoencoderKL` key in the original layout's names."""
    import re

    key = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
        head, _, tail = m[2].rpartition(".")
        return f"{m[1]}.mid.attn_1.{names[head]}.{tail}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
        return f"encoder.down.{m[1]}.downsample.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.upsample.{m[2]}"
    return key  # conv_in, conv_out, norm_out, quant_conv, post_quant_conv


def write_ldm_checkpoint(folder: Path, out: Path) -> Path:
    """The SD folder's UNet, VAE and CLIP text encoder as one original-layout (LDM) state dict, saved as
    safetensors (or, for a `.ckpt` name, with `torch.save`): what single-file SD 1.x checkpoints hold. The inverse
    of diffusers' single-file converters, for the tiny folders only."""
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    up_attentions = {i for i, t in enumerate(unet.config.up_block_types) if "Attn" in t}
    state = {f"model.diffusion_model.{_ldm_unet_key(k, unet.config.layers_per_block, up_attentions)}": v
             for k, v in unet.state_dict().items()}
    for k, v in vae.state_dict().items():
        name = _ldm_vae_key(k, len(vae.config.block_out_channels))
        state[f"first_stage_model.{name}"] = v[..., None, None] if ".mid.attn_1." in name and v.dim() == 2 else v
    for k, v in text.state_dict().items():
        state[f"cond_stage_model.transformer.{'' if k.startswith('text_model.') else 'text_model.'}{k}"] = v
    state = {k: v.contiguous().clone() for k, v in state.items()}
    if out.suffix == ".ckpt":
        torch.save({"state_dict": state}, out)
    else:
        save_file(state, out, metadata={"source": json.dumps(str(folder))})
    return out
