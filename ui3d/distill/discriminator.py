"""The density-ratio discriminator of Uni-Instruct (DESIGN §3.3): a head on UNet encoder (mid-block) features of
noised samples, trained with BCE (real → 1, render → 0) so that at its optimum logit = log r, r = q_t / p_θ,t.

Features come from the teacher UNet (default; f-distill found the frozen teacher better), from the LoRA fake
score (SiDA/DMD2 style), or the head is the parameter-free channel mean of the bottleneck (public Uni-Instruct
code). `ui3d.diffusion.unet_encoder` reads the features: `mid_block_features` runs the UNet's encoder only (real
images), `capture_mid_block` collects them from a full UNet call (the generator's, which needs the denoiser too).
Shared by 2D distillation and 3D guidance.
"""
from __future__ import annotations

from torch import Tensor, nn

KINDS = ("teacher", "fake", "channel-mean")


class DiscriminatorHead(nn.Module):
    """conv3×3 → SiLU → conv1×1 → spatial mean: one logit per sample. The output conv is zero-initialised, so
    r = 1 (no preference) until it has been trained."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(), nn.Conv2d(hidden, 1, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features.to(self.net[0].weight.dtype)).mean(dim=(1, 2, 3))  # fp32 on an fp16 teacher


class ChannelMean(nn.Module):
    """Parameter-free head: the mean of the bottleneck features is the logit."""

    def forward(self, features: Tensor) -> Tensor:
        return features.float().mean(dim=(1, 2, 3))


def build_head(kind: str, channels: int) -> nn.Module:
    """The head for a discriminator kind (`teacher` and `fake` train a `DiscriminatorHead`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown discriminator '{kind}'; expected one of {', '.join(KINDS)}")
    return ChannelMean() if kind == "channel-mean" else DiscriminatorHead(channels)


def mid_block_channels(unet: nn.Module) -> int:
    """Channels of the UNet's bottleneck (its last block width)."""
    return int(unet.config.block_out_channels[-1])
