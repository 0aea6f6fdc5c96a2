"""ProlificDreamer's fake score (Wang et al. 2023, §4 and Appendix): LoRA on the teacher UNet (base weights
shared) plus a camera embedding of the flattened c2w added as the UNet's class embedding, trained by denoising
score matching on detached renders with camera dropout. Used by `vsd` and `uniinstruct`.

The teacher's adapters are disabled and its class embedding absent except inside `FakeScore.active()`, so every
other teacher call (CFG, real-image sampling, other guidances, prompt processing) sees the pure teacher.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from peft import LoraConfig
from torch import Tensor, nn

from ui3d.distill import losses
from ui3d.guidance.base import BaseGuidance, Noised, base_prompt
from ui3d.teachers.teacher import DiffusionTeacher
from ui3d.training import frozen

ADAPTER = "ui3d_fake_score"
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
CAMERA_TYPES = ("extrinsics",)


class CameraEmbedding(nn.Module):
    """MLP of the flattened 4×4 camera-to-world matrix → the UNet's time-embedding width; the output layer is
    zero-initialised so that the fake score starts equal to the teacher."""

    def __init__(self, dim: int, in_features: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, camera: Tensor) -> Tensor:
        return self.net(camera.to(self.net[0].weight.dtype))  # the UNet casts the output to its own dtype


class FakeScore:
    """LoRA adapters (peft, via diffusers' `add_adapter`) + camera class embedding on the teacher's UNet."""

    def __init__(self, teacher: DiffusionTeacher, rank: int, camera_dropout: float = 0.1):
        unet = teacher.unet
        if getattr(unet, "class_embedding", None) is not None:
            raise NotImplementedError("the camera embedding is installed as the class embedding; this teacher "
                                      "UNet already has one (class-conditional teachers are not supported)")
        if ADAPTER in (getattr(unet, "peft_config", None) or {}):
            unet.delete_adapters(ADAPTER)  # a fresh fake score per guidance
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS), adapter_name=ADAPTER)
        self.teacher, self.unet, self.camera_dropout = teacher, unet, camera_dropout
        self.lora = {n: p for n, p in unet.named_parameters() if "lora_" in n and ADAPTER in n}
        for p in self.lora.values():  # trained in fp32 on a half-precision teacher (peft casts around them)
            p.data = p.data.float() if p.dtype in (torch.float16, torch.bfloat16) else p.data
        self.camera = CameraEmbedding(unet.time_embedding.linear_2.out_features).to(teacher.device)
        self._teacher_mode()

    def parameters(self) -> list[nn.Parameter]:
        return [*self.lora.values(), *self.camera.parameters()]

    def _teacher_mode(self) -> None:
        """Adapters off. peft's disable also clears requires_grad on them, which would silently drop the
        gradients of a graph built while they were on, so their flags are set back."""
        self.unet.disable_adapters()
        for p in self.lora.values():
            p.requires_grad_(True)

    @contextmanager
    def active(self):
        """The UNet as the fake score: adapters on, camera embedding installed as its class embedding."""
        self.unet.enable_adapters()
        self.unet.class_embedding = self.camera
        try:
            yield
        finally:
            self.unet.class_embedding = None
            self._teacher_mode()

    def camera_condition(self, c2w: Tensor, dropout: float = 0.0) -> Tensor:
        """Flattened c2w [B, 16]; with probability `dropout` per sample the camera is zeros (unconditional)."""
        camera = c2w.reshape(c2w.shape[0], -1).to(self.teacher.device)
        if dropout > 0:
            keep = torch.rand(camera.shape[0], 1, device=camera.device) >= dropout
            camera = camera * keep
        return camera

    def denoise(self, x_t: Tensor, t: Tensor, text: Tensor, camera: Tensor, trainable: bool = True) -> Tensor:
        """D_p(x_t; y, camera) in the one denoiser convention; `trainable=False` leaves the fake's own
        parameters out of the graph (frozen after enabling the adapters, which resets their flags)."""
        with self.active(), (nullcontext() if trainable else frozen(self.parameters())):
            return self.teacher.denoise(x_t, t, text, class_labels=camera)

    def encoder_features(self, x_t: Tensor, t: Tensor, text: Tensor, camera: Tensor) -> Tensor:
        """The fake score's mid-block output for the `denoise` call with these inputs (the decoder is not run)."""
        with self.active():
            return self.teacher.encoder_features(x_t, t, text, class_labels=camera)


class FakeScoreGuidance(BaseGuidance):
    """A guidance that owns a `FakeScore` trained on its own detached renders (VSD and Uni-Instruct)."""

    @dataclass
    class Config(BaseGuidance.Config):
        guidance_scale: float = 7.5
        """Classifier-free guidance scale of the teacher (ProlificDreamer uses 7.5)."""
        lora_rank: int = 4
        """Rank of the LoRA adapters on the teacher UNet's attention projections."""
        lora_lr: float = 1.0e-3
        """Learning rate of the LoRA weights and the camera embedding."""
        lora_n_timestamp_samples: int = 1
        """Timesteps drawn per render for the fake score's denoising loss."""
        camera_condition_type: str = "extrinsics"
        """Camera input of the fake score: `extrinsics` (flattened c2w, 16 numbers)."""
        camera_dropout: float = 0.1
        """Probability of a zero camera in the fake score's training (ProlificDreamer's camera CFG dropout)."""
        view_dependent_prompting: bool = True
        """Teacher reads the view-dependent prompt embeddings; off: the prompt without its view suffix. The
        fake score always reads the view-independent prompt (the camera embedding carries the view)."""

    def __init__(self, cfg: FakeScoreGuidance.Config, teacher: DiffusionTeacher):
        super().__init__(cfg, teacher)
        if self.cfg.camera_condition_type not in CAMERA_TYPES:
            raise ValueError(f"unknown camera_condition_type '{self.cfg.camera_condition_type}'; "
                             f"expected one of {', '.join(CAMERA_TYPES)}")
        self.fake = FakeScore(teacher, self.cfg.lora_rank, self.cfg.camera_dropout)
        self._text_cache: dict[str, Tensor] = {}

    def trainable_parameters(self) -> list[dict]:
        return [{"params": self.fake.parameters(), "lr": self.cfg.lora_lr}]

    def modules(self) -> list[torch.nn.Module]:
        return [*super().modules(), self.fake.camera]

    def state_dict(self) -> dict[str, Tensor]:
        state = {f"lora.{n}": p.detach() for n, p in self.fake.lora.items()}
        return {**state, **{f"camera.{n}": v for n, v in self.fake.camera.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for name, p in self.fake.lora.items():
                p.copy_(state[f"lora.{name}"])
        self.fake.camera.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("camera.")})

    # --- text -------------------------------------------------------------------------------------------
    def plain_text(self, prompt_embeds) -> Tensor:
        """Embeddings of the prompts without view suffixes (teacher encoder, cached per string)."""
        missing = [p for p in map(base_prompt, prompt_embeds.prompts) if p not in self._text_cache]
        if missing:
            missing = sorted(set(missing))
            self._text_cache.update(zip(missing, self.teacher.encode_text(missing)))
        return torch.stack([self._text_cache[base_prompt(p)] for p in prompt_embeds.prompts]).to(self.device)

    def teacher_text(self, prompt_embeds) -> tuple[Tensor, Tensor]:
        cond, uncond = super().teacher_text(prompt_embeds)
        return (cond if self.cfg.view_dependent_prompting else self.plain_text(prompt_embeds)), uncond

    # --- fake score ---------------------------------------------------------------------------------------
    def fake_denoise(self, noised: Noised, prompt_embeds, c2w: Tensor) -> Tensor:
        """D_p at the generator's x_t, with the fake's own parameters out of the graph."""
        return self.fake.denoise(noised.x_t, noised.t, self.plain_text(prompt_embeds),
                                 self.fake.camera_condition(c2w), trainable=False)

    def lora_loss(self, x0: Tensor, prompt_embeds, c2w: Tensor) -> Tensor:
        """Fake-score DSM on the detached render (`losses.dsm`), ε-MSE units as threestudio's LoRA loss; t in
        the guidance's current range, `lora_n_timestamp_samples` draws per render, camera dropout."""
        n = self.cfg.lora_n_timestamp_samples
        x0 = x0.detach().repeat(n, *([1] * (x0.dim() - 1)))
        noised = self.noise(x0, self.sample_t(x0.shape[0]))
        text = self.plain_text(prompt_embeds).repeat(n, 1, 1)
        camera = self.fake.camera_condition(c2w.repeat(n, 1, 1), self.cfg.camera_dropout)
        d_fake = self.fake.denoise(noised.x_t, noised.t, text, camera)
        eps_units = (noised.alpha_t / noised.sigma_t) ** 2 / x0[0].numel()  # ‖D − x0‖² α²/σ² = ‖ε̂ − ε‖²
        return losses.dsm(d_fake, x0, weight=eps_units)[0]
