"""Teachers of 2D one-step distillation behind one interface (DESIGN §4).

A teacher gives: the data `shape`, a discrete VP schedule, condition sampling (`conditions`: class labels, text
embeddings or none, with the unconditional counterpart for CFG), the guided denoiser D_q (`denoise_cfg`, gradients
flow through x_t), `network()` — a trainable copy that initialises the generator and the fake score —, "real"
samples for the discriminator and multi-step `sample`s for the teacher's own quality at a given NFE. The text-to-3D
teacher (`ui3d.teachers.teacher.DiffusionTeacher`) has the same `shape`, `schedule`, `denoise_cfg` and
`state_dict`: CFG (`guided_denoise`), batched DDIM (`sample_ddim`) and the real pool (`ui3d.distill.real_pool`) are
one implementation for both.

- `mixture-teacher`: an analytic Gaussian mixture in R^d (exact D, exact log q_t, so the true r is known); its
  `network()` is an MLP denoiser fitted to the mixture by denoising score matching (deterministic, cached).
- `unet-teacher`: any diffusers `UNet2DModel` folder (`unet/` + `scheduler/`, through `ui3d.teachers.loader`),
  unconditional or class-conditional (the last class embedding is the null label of CFG), e.g. the project's MNIST
  teacher (`digits`); its discriminator's real images are its own samples or (`real_data: mnist`) MNIST digits.
- `text-teacher`: a text-to-image teacher through `ui3d.teachers.loader` (the embedded one by default, or a
  Stable Diffusion folder: the generator then works in latent space): a one-step text-to-image generator.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from ui3d import register
from ui3d.config import ConfigError
from ui3d.diffusion.denoiser import guided_denoise
from ui3d.diffusion.samplers import sample_ddim
from ui3d.diffusion.schedules import VPDiscrete
from ui3d.diffusion.weighting import truncated_snr_weight
from ui3d.distill import losses
from ui3d.distill.real_pool import RealPool
from ui3d.distill2d.networks import FeatureDiscriminator, MLPDenoiser, MLPDiscriminator, UNetDenoiser
from ui3d.teachers.gaussians import GaussianMixture


def cosine_scheduler(n: int = 1000):
    """DDPM's cosine schedule (squaredcos_cap_v2), as the project's teachers use."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=n, beta_schedule="squaredcos_cap_v2")


class Teacher2D:
    """Base: a frozen denoiser `self.net` (an nn.Module in the `net(x_t, t, cond)` convention) and its schedule."""

    shape: tuple[int, ...]
    schedule: VPDiscrete
    scheduler_config: dict
    """The diffusers scheduler config the schedule comes from (a saved student rebuilds its schedule from it)."""
    net: nn.Module
    prediction_type: str = "sample"
    """What the teacher network predicts (its scheduler's; the mixture's denoiser is exact)."""
    REAL_POOL_BATCH = 256
    """Samples per DDIM batch of the real pool (part of what its samples depend on)."""

    def conditions(self, n: int, generator: torch.Generator) -> tuple[Optional[Tensor], Optional[Tensor], list]:
        """(cond, uncond, labels) for n samples: unconditional teachers give (None, None, [None] * n)."""
        return None, None, [None] * n

    def denoise_cfg(self, x_t: Tensor, t: Tensor, cond, uncond, guidance_scale: float = 1.0) -> Tensor:
        """D_q, classifier-free guided when `guidance_scale` ≠ 1 (CFG on the teacher only; at 1 the conditional
        denoiser alone, which CFG equals)."""
        return guided_denoise(self.net, x_t, t, cond, None if guidance_scale == 1.0 else uncond, guidance_scale)

    def state_dict(self) -> dict[str, Tensor]:
        """The weights the teacher's samples depend on (the real pool's fingerprint)."""
        return self.net.state_dict()

    def network(self) -> nn.Module:
        """A trainable copy of the teacher's denoiser (initialises the generator and the fake score)."""
        net = copy.deepcopy(self.net)
        net.requires_grad_(True).train()
        return net

    def discriminator(self, kind: str, fake: nn.Module) -> nn.Module:
        """The density-ratio discriminator: a head on the teacher's (or fake score's) mid-block features."""
        return FeatureDiscriminator(kind, self.net if kind != "fake" else fake)

    @torch.no_grad()
    def sample(self, n: int, steps: int, generator: torch.Generator, guidance_scale: float = 1.0,
               batch: int = 256) -> tuple[Tensor, list]:
        """n teacher samples with `steps`-step DDIM (NFE = steps, ×2 with CFG), and their labels."""
        x, drawn = sample_ddim(lambda x, t, cond, uncond: self.denoise_cfg(x, t, cond, uncond, guidance_scale),
                               self.conditions, self.shape, n, self.schedule, steps, generator, batch)
        return x, [label for _, _, labels in drawn for label in labels]

    def real(self, n: int, generator: torch.Generator) -> tuple[Tensor, Optional[Tensor]]:
        """"Real" samples of q_0 for the discriminator, with their conditions: a `RealPool` of teacher samples
        made once (`real_pool`, `real_steps`, `guidance_scale`; cached on disk), drawn from with replacement."""
        pool, pool_cond = self._real_pool()
        idx = torch.randint(0, len(pool), (n,), generator=generator)
        return pool[idx], (None if pool_cond is None else pool_cond[idx])

    def _real_pool(self) -> tuple[Tensor, Optional[Tensor]]:
        if getattr(self, "_pool", None) is None:
            pool = RealPool(self, self.cfg.real_pool, self.cfg.real_steps, self.cfg.guidance_scale,
                            batch=self.REAL_POOL_BATCH)
            self._pool = pool.draw(self.cfg.seed, repr(getattr(self.cfg, "prompts", None)))
        return self._pool

    def to_images(self, x: Tensor) -> Tensor:
        """Samples → images [B, C, H, W] in [0, 1] for grids and metrics."""
        return ((x + 1) / 2).clamp(0, 1)

    def student_inputs(self) -> dict:
        """What a saved student needs to draw its conditions as training did (`ui3d.distill2d.pipeline`):
        `num_classes` (class labels), `prompts` with `text_encoder` and `tokenizer` (text), `vae` (latents)."""
        return {}


def _frozen(net: nn.Module) -> nn.Module:
    return net.requires_grad_(False).eval()


_FITTED: dict[tuple, nn.Module] = {}


def _fitted_mlp(key: tuple, mixture: GaussianMixture, alphas_cumprod: Tensor, hidden: int, steps: int, seed: int):
    """An MLP denoiser fitted to the mixture by DSM with the same weighting as the image teachers (v-loss,
    truncated SNR+1), on fresh exact samples each step; cached per process under `key`."""
    if key in _FITTED:
        return _FITTED[key]
    torch.manual_seed(seed)
    dim = mixture.means.shape[1]
    net = MLPDenoiser(dim, alphas_cumprod, hidden=hidden)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    n = len(alphas_cumprod)
    for step in range(steps):
        x0 = mixture.sample(512, generator=g).float()
        t = torch.randint(0, n, (512,), generator=g)
        alpha, sigma = net.alpha_sigma(t)
        x_t = alpha[:, None] * x0 + sigma[:, None] * torch.randn(x0.shape, generator=g)
        loss, _ = losses.dsm(net(x_t, t), x0, weight=truncated_snr_weight(alpha**2 / sigma**2))
        for group in opt.param_groups:
            group["lr"] = 2e-3 * (1 - step / steps) + 1e-4
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _FITTED[key] = _frozen(net)
    return _FITTED[key]


@register("mixture-teacher")
class MixtureTeacher(Teacher2D):
    """An analytic Gaussian mixture in R^d: a ring of `n_modes` modes (optionally unequal `weights`) in the first
    two coordinates; D_q is exact (`marginal_denoiser`), and so is log q_t."""

    @dataclass
    class Config:
        n_modes: int = 8
        radius: float = 2.0
        std: float = 0.1
        weights: Optional[list] = None
        """Mode weights (normalised); null = equal. The 2D benchmark uses unequal ones."""
        dim: int = 2
        """Ambient dimension (modes sit in the first two coordinates)."""
        fit_steps: int = 1500
        """DSM steps of the MLP that initialises generator and fake score."""
        hidden: int = 256
        init_modes: Optional[list] = None
        """Modes (indices) the generator and fake score start on: their MLP is fitted to these modes alone
        (weights renormalised); null = the whole mixture."""
        seed: int = 0

        def __post_init__(self):
            if self.weights is not None and len(self.weights) != self.n_modes:
                raise ConfigError(f"mixture-teacher: {len(self.weights)} weights for {self.n_modes} modes; give one "
                                  "per mode")
            if self.init_modes is not None and not (self.init_modes and all(
                    0 <= int(k) < self.n_modes for k in self.init_modes)):
                raise ConfigError(f"mixture-teacher: init_modes {list(self.init_modes)} must name modes 0 to "
                                  f"{self.n_modes - 1} (or be null for the whole mixture)")

    def __init__(self, cfg: "MixtureTeacher.Config"):
        self.cfg = cfg
        weights = None if cfg.weights is None else torch.tensor(cfg.weights, dtype=torch.float64)
        ring = GaussianMixture.ring(cfg.n_modes, cfg.radius, cfg.std, weights)
        means = torch.zeros(cfg.n_modes, cfg.dim, dtype=torch.float64)
        means[:, :2] = ring.means
        self.mixture = GaussianMixture(ring.weights, means, ring.variances)
        scheduler = cosine_scheduler()
        self.schedule, self.scheduler_config = VPDiscrete.from_scheduler(scheduler), dict(scheduler.config)
        self.shape = (cfg.dim,)
        self.net = _Exact(self)

    def start_mixture(self) -> GaussianMixture:
        """What the generator and fake score start as: the mixture, or its `init_modes` alone."""
        if self.cfg.init_modes is None:
            return self.mixture
        keep = torch.tensor([int(k) for k in self.cfg.init_modes])
        m = self.mixture
        return GaussianMixture(m.weights[keep] / m.weights[keep].sum(), m.means[keep], m.variances[keep])

    def network(self) -> nn.Module:
        key = (self.cfg.n_modes, self.cfg.radius, self.cfg.std, tuple(self.cfg.weights or ()), self.cfg.dim,
               self.cfg.hidden, self.cfg.fit_steps, self.cfg.seed, tuple(self.cfg.init_modes or ()))
        fitted = _fitted_mlp(key, self.start_mixture(), self.schedule.alphas_cumprod, self.cfg.hidden,
                             self.cfg.fit_steps, self.cfg.seed)
        return copy.deepcopy(fitted).requires_grad_(True).train()

    def discriminator(self, kind: str, fake: nn.Module) -> nn.Module:
        """Vectors have no UNet encoder to read: every kind is an MLP on (x_t, t)."""
        return MLPDiscriminator(self.shape[0], len(self.schedule.alphas_cumprod))

    def real(self, n: int, generator: torch.Generator) -> tuple[Tensor, None]:
        return self.mixture.sample(n, generator=generator).float(), None

    def log_q(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Exact log q_t(x_t) per sample."""
        alpha, sigma = self.schedule.alpha_sigma(t)
        return self.mixture.marginal_log_prob(x_t.double(), alpha.double(), sigma.double()).float()

    def to_images(self, x: Tensor) -> Tensor:
        """A 64×64 histogram of the first two coordinates over [−1.5 R, 1.5 R]² (white = empty)."""
        r, n = 1.5 * self.cfg.radius, 64
        ij = ((x[:, :2] + r) / (2 * r) * n).long().clamp(0, n - 1)
        hist = torch.zeros(n * n).index_add_(0, ij[:, 1] * n + ij[:, 0], torch.ones(len(x))).reshape(n, n)
        img = 1 - (hist / hist.max().clamp(min=1)).sqrt()
        return img.flip(0)[None, None].expand(1, 3, n, n)


class _Exact(nn.Module):
    """The mixture's exact denoiser as a module in the `net(x_t, t, cond)` convention."""

    def __init__(self, teacher: MixtureTeacher):
        super().__init__()
        self._teacher = [teacher]

    def forward(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        teacher = self._teacher[0]
        alpha, sigma = teacher.schedule.alpha_sigma(t)
        return teacher.mixture.marginal_denoiser(x_t.double(), alpha.double(), sigma.double()).to(x_t.dtype)


REAL_DATA = ("teacher", "mnist")
"""What `unet-teacher` gives its discriminator as real images."""


def check_real_data(real_data: str, shape: tuple[int, ...], n_classes: Optional[int]) -> None:
    """`real_data: mnist` needs a teacher MNIST digits fit: 1 channel, a side `load_mnist` makes (16, 28, 32),
    unconditional or 10 digit classes + the null label (its conditions are the digits' labels)."""
    from ui3d.data.mnist import RESOLUTIONS

    if real_data != "mnist":
        return
    sides = ", ".join(map(str, RESOLUTIONS))
    if shape[0] != 1 or shape[1] != shape[2] or shape[1] not in RESOLUTIONS:
        raise ConfigError(f"unet-teacher: real_data: mnist needs a 1-channel teacher of side {sides}; this one makes "
                          f"{'×'.join(map(str, shape))} samples (or use real_data: teacher)")
    if n_classes and n_classes != 11:
        raise ConfigError(f"unet-teacher: real_data: mnist needs an unconditional teacher or 10 digit classes + the "
                          f"null label; this one has {n_classes} class embeddings (or use real_data: teacher)")


@register("unet-teacher")
class UNetTeacher(Teacher2D):
    """A diffusers `UNet2DModel` teacher, unconditional or class-conditional (`num_class_embeds`: the last
    embedding is CFG's null label)."""

    @dataclass
    class Config:
        pretrained_model_name_or_path: str = "digits"
        guidance_scale: float = 1.0
        real_pool: int = 512
        """Teacher samples made once as the discriminator's "real" images."""
        real_steps: int = 35
        """DDIM steps of those samples."""
        real_data: str = "teacher"
        """The discriminator's "real" images: `teacher` = the pool of teacher samples above (the GAN pulls the
        student towards the teacher); `mnist` = the 50000 MNIST *training* digits at the teacher's resolution in
        [−1, 1], with their digit labels as conditions (the GAN pulls it towards the data, as DMD2 and SiDA train;
        `real_pool` and `real_steps` are then unused). The digits' metrics score against the MNIST *test* split
        (`evaluate.mnist_reference`), disjoint from the training split. `mnist` needs a 1-channel teacher at 16, 28
        or 32 pixels, unconditional or with 10 classes + the null label."""
        seed: int = 0

        def __post_init__(self):
            if self.real_data not in REAL_DATA:
                raise ConfigError(f"unet-teacher: real_data '{self.real_data}' is not one of {', '.join(REAL_DATA)}")

    def __init__(self, cfg: "UNetTeacher.Config"):
        from ui3d.teachers.loader import load_unet_teacher

        self.cfg = cfg
        unet, scheduler, _ = load_unet_teacher(cfg.pretrained_model_name_or_path)
        self.schedule, self.scheduler_config = VPDiscrete.from_scheduler(scheduler), dict(scheduler.config)
        self.prediction_type = scheduler.config.prediction_type
        self.net = _frozen(UNetDenoiser(unet, self.schedule.alphas_cumprod, self.prediction_type))
        self.n_classes = unet.config.num_class_embeds
        self.shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        check_real_data(cfg.real_data, self.shape, self.n_classes)

    @classmethod
    def check(cls, cfg: "UNetTeacher.Config") -> None:
        """Before the run directory is made: the folder is there and sound (the loader's errors, exit 2), and its
        UNet config (read, not loaded) fits `real_data`."""
        from ui3d.teachers.loader import unet_folder

        path = unet_folder(cfg.pretrained_model_name_or_path)
        unet = json.loads(((path / "unet" if (path / "unet").is_dir() else path) / "config.json").read_text())
        side = unet.get("sample_size", 32)
        side = side if isinstance(side, int) else side[0]
        check_real_data(cfg.real_data, (unet.get("in_channels", 3), side, side), unet.get("num_class_embeds"))

    def real(self, n: int, generator: torch.Generator) -> tuple[Tensor, Optional[Tensor]]:
        """With `real_data: mnist`, n MNIST training digits (with replacement) and their labels as conditions
        (None for an unconditional teacher); else the teacher-sample pool (`Teacher2D.real`)."""
        if self.cfg.real_data == "teacher":
            return super().real(n, generator)
        if getattr(self, "_mnist", None) is None:
            from ui3d.data.mnist import load_mnist

            self._mnist = load_mnist("train", resolution=self.shape[-1])
        images, labels = self._mnist
        idx = torch.randint(0, len(images), (n,), generator=generator)
        return images[idx], (labels[idx] if self.n_classes else None)

    def conditions(self, n, generator):
        if not self.n_classes:
            return None, None, [None] * n
        labels = torch.randint(0, self.n_classes - 1, (n,), generator=generator)
        return labels, torch.full_like(labels, self.n_classes - 1), labels.tolist()

    def student_inputs(self) -> dict:
        return {"num_classes": self.n_classes - 1} if self.n_classes else {}


@register("text-teacher")
class TextTeacher(Teacher2D):
    """A text-to-image teacher (embedded, or a Stable Diffusion folder: latents, decoded for images); the
    conditions are prompts drawn from `prompts`."""

    @dataclass
    class Config:
        pretrained_model_name_or_path: str = "embedded"
        prompts: list = field(default_factory=lambda: ["a red vase", "a blue mug", "a green ball", "a yellow cone"])
        guidance_scale: float = 3.0
        real_pool: int = 256
        real_steps: int = 35
        seed: int = 0

    def __init__(self, cfg: "TextTeacher.Config"):
        from ui3d.teachers.loader import load_teacher

        self.cfg = cfg
        self.teacher = load_teacher(cfg.pretrained_model_name_or_path)
        self.teacher.check_prompts(list(cfg.prompts))
        self.schedule, self.scheduler_config = self.teacher.schedule, dict(self.teacher.scheduler.config)
        self.prediction_type = self.teacher.prediction_type
        self.net = _frozen(UNetDenoiser(self.teacher.unet, self.schedule.alphas_cumprod, self.teacher.prediction_type))
        with torch.no_grad():
            self.embeddings = self.teacher.encode_text(list(cfg.prompts))
            self.null = self.teacher.encode_text([""])
        unet = self.teacher.unet.config
        self.shape = (unet.in_channels, unet.sample_size, unet.sample_size)

    def conditions(self, n, generator):
        idx = torch.randint(0, len(self.cfg.prompts), (n,), generator=generator)
        return self.embeddings[idx], self.null.expand(n, -1, -1), [self.cfg.prompts[i] for i in idx]

    def state_dict(self) -> dict[str, Tensor]:
        """UNet, text encoder (the conditions' embeddings) and VAE."""
        return self.teacher.state_dict()

    def to_images(self, x: Tensor) -> Tensor:
        return self.teacher.decode(x).clamp(0, 1)

    def student_inputs(self) -> dict:
        return {"prompts": list(self.cfg.prompts), "text_encoder": self.teacher.text_encoder,
                "tokenizer": self.teacher.tokenizer, "vae": self.teacher.vae}
