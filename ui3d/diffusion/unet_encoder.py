"""The encoder half of a diffusers UNet: what the density-ratio discriminators read (its mid-block output), computed
without running the decoder.

`mid_block_features` runs a UNet's own embedding, input convolution, down blocks and mid block in the order and
with the arguments of its `forward` (`UNet2DModel` and `UNet2DConditionModel`, as diffusers ≥ 0.30 writes them;
tests/diffusion/test_unet_encoder.py compares the two), so its output equals the mid block's output inside a full
call. ControlNet/T2I residuals, attention masks and image-hint conditioning are not supported.
`capture_mid_block` collects the same output from full calls (when the denoised output is needed too).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn


def _check_mid_block(unet: nn.Module) -> None:
    if getattr(unet, "mid_block", None) is None:
        raise ValueError("the discriminator reads the UNet's mid block; this UNet has none (mid_block_type=None)")


@contextmanager
def capture_mid_block(unet: nn.Module):
    """Collect the UNet mid block's outputs [B, C, h, w] of the calls made inside."""
    _check_mid_block(unet)
    features: list[Tensor] = []

    def hook(_module, _inputs, output):
        features.append(output[0] if isinstance(output, tuple) else output)

    handle = unet.mid_block.register_forward_hook(hook)
    try:
        yield features
    finally:
        handle.remove()


def mid_block_features(unet: nn.Module, sample: Tensor, timestep: Tensor, encoder_hidden_states: Tensor | None = None,
                       class_labels: Tensor | None = None) -> Tensor:
    """The UNet's mid-block output [B, C, h, w] for the call `unet(sample, timestep, …)`."""
    _check_mid_block(unet)
    if unet.config.center_input_sample:
        sample = 2 * sample - 1.0
    if hasattr(unet, "get_time_embed"):  # UNet2DConditionModel
        return _conditional_encoder(unet, sample, timestep, encoder_hidden_states, class_labels)
    return _plain_encoder(unet, sample, timestep, class_labels)


def _conditional_encoder(unet, sample: Tensor, timestep: Tensor, text: Tensor | None, class_labels) -> Tensor:
    """`UNet2DConditionModel.forward` steps 1–4."""
    if unet.config.addition_embed_type == "image_hint":
        raise NotImplementedError("image-hint conditioning changes the UNet input; not supported here")
    emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)
    class_emb = unet.get_class_embed(sample=sample, class_labels=class_labels)
    if class_emb is not None:
        emb = torch.cat([emb, class_emb], dim=-1) if unet.config.class_embeddings_concat else emb + class_emb
    aug_emb = unet.get_aug_embed(emb=emb, encoder_hidden_states=text, added_cond_kwargs=None)
    emb = emb + aug_emb if aug_emb is not None else emb
    if unet.time_embed_act is not None:
        emb = unet.time_embed_act(emb)
    text = unet.process_encoder_hidden_states(encoder_hidden_states=text, added_cond_kwargs=None)
    sample = unet.conv_in(sample)
    cross = dict(encoder_hidden_states=text, attention_mask=None, cross_attention_kwargs=None,
                 encoder_attention_mask=None)
    for block in unet.down_blocks:
        if getattr(block, "has_cross_attention", False):
            sample, _ = block(hidden_states=sample, temb=emb, **cross)
        else:
            sample, _ = block(hidden_states=sample, temb=emb)
    if getattr(unet.mid_block, "has_cross_attention", False):
        return unet.mid_block(sample, emb, **cross)
    return unet.mid_block(sample, emb)


def _plain_encoder(unet, sample: Tensor, timestep: Tensor, class_labels) -> Tensor:
    """`UNet2DModel.forward` steps 1–4."""
    timesteps = timestep
    if not torch.is_tensor(timesteps):
        timesteps = torch.tensor([timesteps], dtype=torch.long, device=sample.device)
    elif timesteps.dim() == 0:
        timesteps = timesteps[None].to(sample.device)
    timesteps = timesteps * torch.ones(sample.shape[0], dtype=timesteps.dtype, device=timesteps.device)
    emb = unet.time_embedding(unet.time_proj(timesteps).to(dtype=unet.dtype))
    if unet.class_embedding is not None:
        if class_labels is None:
            raise ValueError("class_labels should be provided when doing class conditioning")
        if unet.config.class_embed_type == "timestep":
            class_labels = unet.time_proj(class_labels)
        emb = emb + unet.class_embedding(class_labels).to(dtype=unet.dtype)
    elif class_labels is not None:
        raise ValueError("class_embedding needs to be initialized in order to use class conditioning")
    skip_sample, sample = sample, unet.conv_in(sample)
    for block in unet.down_blocks:
        if hasattr(block, "skip_conv"):
            sample, _, skip_sample = block(hidden_states=sample, temb=emb, skip_sample=skip_sample)
        else:
            sample, _ = block(hidden_states=sample, temb=emb)
    return unet.mid_block(sample, emb)
