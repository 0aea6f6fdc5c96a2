"""Diffusion math shared by every pipeline: noise schedules, the one denoiser convention, per-time weights, and a
UNet's encoder (mid-block) features."""
