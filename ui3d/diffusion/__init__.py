"""Diffusion math shared by every pipeline: noise schedules and the one denoiser convention."""
