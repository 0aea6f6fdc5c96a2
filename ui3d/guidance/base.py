"""Shared plumbing of the text-to-3D guidances (threestudio's guidance role), so that `sds.py`, `vsd.py` and
`uniinstruct.py` stay thin adapters over `ui3d.distill`: every loss is defined once, in `ui3d.distill.losses`.

A guidance turns renders into `{"loss_<x>": …}` (DreamFusion, Poole et al. 2022, §3): render → teacher x_0
(VAE latents for latent teachers, the resized image for pixel teachers), t uniform in the step-scheduled
[min_step_percent, max_step_percent] range, x_t = alpha_t x_0 + sigma_t eps, the teacher's CFG denoiser D_q.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ui3d.diffusion.denoiser import expand_like
from ui3d.diffusion.weighting import paper_time_weight
from ui3d.distill.objective import DistillObjective
from ui3d.schedule import scheduled
from ui3d.teachers.teacher import DiffusionTeacher


class Noised(NamedTuple):
    """A render in teacher space and its noised version at per-sample integer timesteps `t`."""

    x0: Tensor
    x_t: Tensor
    t: Tensor
    alpha_t: Tensor
    sigma_t: Tensor


def base_prompt(prompt: str) -> str:
    """The prompt without its view suffix: "a red vase, side view" → "a red vase"."""
    head, sep, tail = prompt.rpartition(",")
    return head.strip() if sep and tail.strip().endswith("view") else prompt


def as_config(cls: type, cfg: Any):
    """A `Config` instance from an instance, a dict or an OmegaConf node (unknown keys fail)."""
    if isinstance(cfg, cls):
        return cfg
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return cls(**(cfg or {}))


class BaseGuidance:
    """Common config, timestep schedule, render → x_t, the teacher's CFG call, and the output dict."""

    method = ""
    """The `ui3d.distill.losses` generator loss this guidance adapts (the output key is `loss_<method>`)."""

    @dataclass
    class Config:
        pretrained_model_name_or_path: str = "embedded"
        """Teacher folder, cached hub id, single-file SD 1.x/2.x checkpoint (`.safetensors`/`.ckpt`, original layout;
        see `teacher_config`) or `embedded`; the system loads it with `ui3d.teachers.loader`."""
        guidance_scale: float = 100.0
        """Classifier-free guidance scale of the teacher (never applied to the fake score)."""
        min_step_percent: Any = 0.02
        """Lower end of t / num_train_timesteps: a float or `[start_step, start_value, end_value, end_step]`."""
        max_step_percent: Any = 0.98
        """Upper end of t / num_train_timesteps: a float or a step schedule."""
        weighting: str = "sds"
        """Per-time weight: sds | eps-sds | uniform | fantasia3d | normalized | exact | paper (`distill.objective`)."""
        eps_power: Any = 1.0
        """`eps-sds` only: the power p of its ε-unit factor, a float or a step schedule: 0 weighs time as `sds`
        does on the method's own units, 1 as threestudio's σ² on ε units (e.g. `[480, 0.0, 1.0, 481]`: `sds`
        while the shape forms, ε units for the details)."""
        shared_t: bool = False
        """One timestep for every view of a batch (threestudio draws one per view). With several views per step,
        a guidance that weighs views by a density ratio (Uni-Instruct, h(r)) then compares them at one noise
        level, where the ratio differs by what the views show rather than by their t."""
        grad_clip: Optional[Any] = None
        """Clamp the generator's gradient on x_0 elementwise (threestudio's `grad_clip`), float or schedule."""
        enable_attention_slicing: bool = False
        """Compute the UNet's attention in slices (diffusers' `set_attention_slice("auto")`): less memory, slower."""
        enable_memory_efficient_attention: bool = False
        """PyTorch's scaled-dot-product attention processor (`AttnProcessor2_0`; flash / memory-efficient kernels on
        CUDA) for every attention layer of the UNet and VAE (threestudio's key; xformers is not needed)."""
        enable_channels_last_format: bool = False
        """UNet weights in channels-last memory format (faster convolutions with tensor cores)."""
        enable_vae_slicing: bool = False
        """Encode a batch of renders through the VAE one image at a time (latent teachers)."""
        enable_vae_tiling: bool = False
        """Encode large renders through the VAE in overlapping tiles (latent teachers)."""
        offload_text_encoder: bool = False
        """Keep the text encoder where it was loaded (the CPU, in its loaded dtype) when the system moves to a GPU:
        the prompt embeddings are computed once and cached, so its memory is left to the UNet (a rare new prompt is
        encoded on the CPU)."""
        teacher_config: str = ""
        """For a single-file teacher (`pretrained_model_name_or_path: model.safetensors` or `.ckpt`, original
        layout): the diffusers folder or cached hub id whose component configs, tokenizer and scheduler go with it
        (its `prediction_type` decides ε or v). Empty: the repository diffusers infers from the checkpoint
        (stable-diffusion-v1-5, stable-diffusion-2-1 or -2-1-base), from the local cache."""
        teacher_lora: str = ""
        """A LoRA `.safetensors` file (diffusers or kohya format) fused into the teacher when it is loaded (a
        custom style or subject on an SD 1.x/2.x teacher)."""
        teacher_lora_scale: float = 1.0
        """Strength of the fused `teacher_lora`."""
        half_precision_weights: Any = False
        """Load the teacher's weights in fp16 (threestudio's key): `true`, `false`, or `auto` (fp16 when training
        on CUDA). The fake score's LoRA, the camera embedding, the discriminator head, the ratio and the losses stay
        in fp32."""

    def __init__(self, cfg: BaseGuidance.Config, teacher: DiffusionTeacher):
        self.cfg = as_config(type(self).Config, cfg)
        self.teacher = teacher
        for name, p in teacher.named_parameters():  # frozen base weights (adapters are the fake score's)
            if "lora_" not in name:
                p.requires_grad_(False)
        self.objective = DistillObjective(self.objective_config())
        self.update_step(0)
        self.memory_options()

    def memory_options(self) -> None:
        """Apply the config's memory options to the teacher (`enable_*`, `offload_text_encoder`)."""
        cfg, unet, vae = self.cfg, self.teacher.unet, self.teacher.vae
        if cfg.enable_memory_efficient_attention:
            from diffusers.models.attention_processor import AttnProcessor2_0

            for model in (unet, vae):
                if model is not None and hasattr(model, "set_attn_processor"):
                    model.set_attn_processor(AttnProcessor2_0())
        if cfg.enable_attention_slicing:
            unet.set_attention_slice("auto")
        if cfg.enable_channels_last_format:
            unet.to(memory_format=torch.channels_last)
        for flag, method in ((cfg.enable_vae_slicing, "enable_slicing"), (cfg.enable_vae_tiling, "enable_tiling")):
            if flag and vae is not None:
                getattr(vae, method)()

    def objective_config(self) -> DistillObjective.Config:
        return DistillObjective.Config(method=self.method, weighting=self.cfg.weighting)

    @property
    def device(self) -> torch.device:
        return self.teacher.device

    def update_step(self, global_step: int) -> None:
        """Evaluate the step-scheduled values (timestep range, gradient clip, `eps_power`) at `global_step`."""
        self.global_step = int(global_step)
        self.min_step_percent = scheduled(self.cfg.min_step_percent, self.global_step)
        self.max_step_percent = scheduled(self.cfg.max_step_percent, self.global_step)
        clip = self.cfg.grad_clip
        self.grad_clip = None if clip is None else scheduled(clip, self.global_step)
        self.eps_power = scheduled(self.cfg.eps_power, self.global_step)

    def trainable_parameters(self) -> list[dict]:
        """Optimizer parameter groups of the guidance's own networks (none for SDS)."""
        return []

    def modules(self) -> list[torch.nn.Module]:
        """Every network the guidance runs: the frozen teacher (with the fake score's adapters) and its own."""
        return [self.teacher]

    def apply(self, fn) -> None:
        """Apply a `Module._apply` conversion (device, dtype) to every network of the guidance: the system calls
        it when Lightning moves the system, so the teacher and the fake score follow the trainer's device and
        precision while staying out of the system's state dict."""
        offloaded = self.teacher.text_encoder if self.cfg.offload_text_encoder else None
        for module in self.modules():
            if module is self.teacher and offloaded is not None:  # the text encoder stays where it was loaded
                for child in module.children():
                    if child is not offloaded:
                        child._apply(fn)
            else:
                module._apply(fn)

    def state_dict(self) -> dict[str, Tensor]:
        """The guidance's trainable tensors, for checkpoints (the teacher is reloaded from its folder)."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise KeyError(f"{type(self).__name__} has no trainable state; got {sorted(state)[:3]}")

    # --- time, noise, teacher -----------------------------------------------------------------------------
    def sample_t(self, n: int, shared: bool = False) -> Tensor:
        """Integer timesteps uniform in the scheduled [min, max] fraction of the training range; `shared`: one for
        all `n`."""
        t = self.teacher.schedule.sample_t(1 if shared else n, self.min_step_percent, self.max_step_percent,
                                           device=self.device)
        return t.expand(n).clone() if shared else t

    def noise(self, x0: Tensor, t: Tensor) -> Noised:
        """x_t = alpha_t x_0 + sigma_t eps."""
        alpha_t, sigma_t = (v.to(x0) for v in self.teacher.schedule.alpha_sigma(t))
        x_t = expand_like(alpha_t, x0) * x0 + expand_like(sigma_t, x0) * torch.randn_like(x0)
        return Noised(x0, x_t, t, alpha_t, sigma_t)

    def noised_render(self, rgb: Tensor) -> Noised:
        """Render [B, H, W, 3] in [0, 1] → teacher x_0 (with gradients) → x_t at fresh timesteps."""
        x0 = self.teacher.encode_images(rgb.permute(0, 3, 1, 2).to(self.device))
        if self.grad_clip is not None and x0.requires_grad:
            bound = self.grad_clip / x0.shape[0]  # threestudio clamps before its 1/B batch mean
            x0.register_hook(lambda g: torch.nan_to_num(g).clamp(-bound, bound))
        return self.noise(x0, self.sample_t(x0.shape[0], self.cfg.shared_t))

    def teacher_text(self, prompt_embeds) -> tuple[Tensor, Tensor]:
        """(cond, uncond) text embeddings for the teacher's CFG call."""
        return prompt_embeds.cond.to(self.device), prompt_embeds.uncond.to(self.device)

    def teacher_denoise(self, noised: Noised, prompt_embeds) -> Tensor:
        """D_q^cfg(x_t): the teacher with classifier-free guidance (adapters off: the pure teacher)."""
        cond, uncond = self.teacher_text(prompt_embeds)
        return self.teacher.denoise_cfg(noised.x_t, noised.t, cond, uncond, self.cfg.guidance_scale)

    # --- loss and outputs ---------------------------------------------------------------------------------
    def current_objective(self) -> DistillObjective:
        """The objective of the current step (a subclass may switch it, e.g. a warm start)."""
        return self.objective

    def generator_loss(self, noised: Noised, d_teacher: Tensor, d_fake=None, logit=None,
                       gan_logit=None) -> dict[str, Tensor]:
        """The configured `DistillObjective` (one of `ui3d.distill.losses`) on the noised render."""
        schedule = self.teacher.schedule
        n = schedule.num_train_timesteps
        time_weight = paper_time_weight(schedule, noised.t, self.min_step_percent, self.max_step_percent, noised.x0)
        return self.current_objective()(noised.x0, noised.x_t, noised.alpha_t, noised.sigma_t, d_teacher, d_fake,
                              logit=logit, t=noised.t.float() / n, time_weight=time_weight, gan_logit=gan_logit,
                              eps_power=self.eps_power)

    def outputs(self, objective_out: dict[str, Tensor], noised: Noised) -> dict[str, Tensor]:
        """`loss_<method>` = the objective's total (its `lambda_gan` × GAN term included), `loss_gan` detached
        and unweighted for logging, scalar stats detached."""
        out = {f"loss_{self.method}": objective_out["loss"]}
        for key, value in objective_out.items():
            if key not in ("loss", f"loss_{self.method}"):
                out[key] = value.detach()
        out["t"] = noised.t.float().mean()
        out["min_step_percent"] = torch.tensor(self.min_step_percent)
        out["max_step_percent"] = torch.tensor(self.max_step_percent)
        return out
