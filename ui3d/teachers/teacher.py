"""A text-conditioned diffusion teacher behind one interface, whatever its parameterisation and space.

Stable Diffusion (latent, VAE) and the embedded teacher (pixel space) both come out of `ui3d.teachers.loader`
as a `DiffusionTeacher`: text in, the denoiser D(x_t, t) ≈ E[x_0 | x_t] out (eps/v converted here, once),
images in [0, 1] mapped to the teacher's x_0 space and back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ui3d.diffusion.denoiser import guided_denoise, to_denoised
from ui3d.diffusion.schedules import VPDiscrete
from ui3d.diffusion.unet_encoder import mid_block_features


class PromptError(ValueError):
    """A prompt the teacher cannot read."""


def vocabulary(tokenizer) -> list[str] | None:
    """The words a word-level tokenizer knows (None for subword tokenizers, which read anything)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordLevel":
        return None
    return sorted(w for w in backend.get_vocab() if not w.startswith("["))


def check_prompts(tokenizer, prompts: list[str], name: str) -> None:
    """Raise `PromptError` listing the unknown words, the vocabulary, and how to use Stable Diffusion instead; or
    naming a prompt longer than a word-level teacher reads (it would be cut, its end token lost)."""
    vocab = vocabulary(tokenizer)
    if vocab is None:
        return
    backend = tokenizer.backend_tokenizer
    words = {w for p in prompts for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(p))}
    unknown = sorted(words - set(vocab))
    if unknown:
        raise PromptError(
            f"the teacher '{name}' does not know the word(s) {', '.join(repr(w) for w in unknown)}.\n"
            f"  Its vocabulary: {' '.join(vocab)}\n"
            "  Use those words (e.g. \"a red striped vase\"), or point the config at a Stable Diffusion folder "
            "or cached hub id instead: system.guidance.pretrained_model_name_or_path=... and "
            "system.prompt_processor.pretrained_model_name_or_path=... (see configs/sd/)."
        )
    limit = tokenizer.model_max_length
    for prompt in prompts:
        if len(tokenizer(prompt).input_ids) > limit:
            raise PromptError(f"the prompt '{prompt}' is longer than the {limit} tokens the teacher '{name}' reads "
                              f"(with its begin and end tokens); drop a word (e.g. the colour of a normal map)")


@torch.no_grad()
def encode_text(tokenizer, text_encoder, prompts: list[str]) -> Tensor:
    """Text embeddings [B, L, C]: the encoder's last hidden state on prompts padded to the tokenizer's length (as
    Stable Diffusion uses), on the encoder's device (the UNet's, or the CPU when offloaded)."""
    tokens = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    return text_encoder(tokens.input_ids.to(next(text_encoder.parameters()).device))[0]


def decode(x0: Tensor, vae=None) -> Tensor:
    """x_0 → images in [0, 1]: VAE-decoded latents (÷ scaling factor), or pixels in [−1, 1]."""
    if vae is not None:
        x0 = vae.decode((x0 / vae.config.scaling_factor).to(vae.dtype)).sample.to(x0.dtype)
    return ((x0 + 1) / 2).clamp(0, 1)


class DiffusionTeacher(nn.Module):
    """UNet + scheduler + text encoder + tokenizer (+ VAE for latent models), frozen by the caller if needed."""

    def __init__(self, unet, scheduler, text_encoder, tokenizer, vae=None, name: str = ""):
        super().__init__()
        self.unet, self.text_encoder, self.vae = unet, text_encoder, vae
        self.scheduler, self.tokenizer, self.name = scheduler, tokenizer, name
        self.fingerprint = name  # the loader sets path@mtime, so caches follow retrained weights
        self.schedule = VPDiscrete.from_scheduler(scheduler)
        self.prediction_type = scheduler.config.prediction_type

    @property
    def latent(self) -> bool:
        return self.vae is not None

    @property
    def resolution(self) -> int:
        """Image side the teacher was trained at (pixels)."""
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1) if self.latent else 1
        return int(self.unet.config.sample_size) * scale

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one x_0 (latents for latent models, pixels otherwise): what samplers draw noise of."""
        side = int(self.unet.config.sample_size)
        return int(self.unet.config.in_channels), side, side

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def vocabulary(self) -> list[str] | None:
        """The words a word-level tokenizer knows (None for subword tokenizers, which read anything)."""
        return vocabulary(self.tokenizer)

    def check_prompts(self, prompts: list[str]) -> None:
        """Fail before any training on words the teacher does not know, saying what it knows instead."""
        check_prompts(self.tokenizer, prompts, self.name)

    def encode_text(self, prompts: list[str]) -> Tensor:
        """Text embeddings [B, L, C] (the encoder's last hidden state, as Stable Diffusion uses)."""
        self.check_prompts(prompts)
        return encode_text(self.tokenizer, self.text_encoder, prompts).to(self.device)

    def _unet_inputs(self, x_t: Tensor, t: Tensor, text_emb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x_t, t, text) as the UNet takes them: its dtype and device, one timestep per sample."""
        t = t.to(self.device).expand(x_t.shape[0]) if t.dim() == 0 else t.to(self.device)
        return x_t.to(self.unet.dtype), t, text_emb.to(self.unet.dtype)

    def denoise(self, x_t: Tensor, t: Tensor, text_emb: Tensor, **unet_kwargs) -> Tensor:
        """D(x_t, t) in the one denoiser convention; gradients flow through x_t (and any trainable adapters)."""
        x, t, text = self._unet_inputs(x_t, t, text_emb)
        out = self.unet(x, t, encoder_hidden_states=text, **unet_kwargs).sample
        alpha, sigma = self.schedule.alpha_sigma(t)
        return to_denoised(out.to(x_t.dtype), x_t, alpha.to(x_t), sigma.to(x_t), self.prediction_type)

    def encoder_features(self, x_t: Tensor, t: Tensor, text_emb: Tensor, **unet_kwargs) -> Tensor:
        """The UNet's mid-block output [B, C, h, w] for the `denoise` call with these inputs (the decoder is not
        run): the discriminators' features."""
        x, t, text = self._unet_inputs(x_t, t, text_emb)
        return mid_block_features(self.unet, x, t, encoder_hidden_states=text, **unet_kwargs)

    def denoise_cfg(self, x_t: Tensor, t: Tensor, cond: Tensor, uncond: Tensor, guidance_scale: float) -> Tensor:
        """Classifier-free guided D, both branches in one batched forward (CFG on the teacher only)."""
        return guided_denoise(self.denoise, x_t, t, cond, uncond, guidance_scale)

    def encode_images(self, images: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [0, 1] → x_0: VAE latents (× scaling factor) at the teacher's resolution, or
        the resized image in [−1, 1] for pixel models. Differentiable (renders carry gradients)."""
        size = self.resolution
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, (size, size), mode="bilinear", align_corners=False, antialias=True)
        x = images * 2 - 1
        if not self.latent:
            return x
        latents = self.vae.encode(x.to(self.vae.dtype)).latent_dist.sample()
        return (latents * self.vae.config.scaling_factor).to(images.dtype)

    def decode(self, x0: Tensor) -> Tensor:
        """x_0 → images in [0, 1]."""
        return decode(x0, self.vae)
