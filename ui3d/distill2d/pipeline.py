"""A trained one-step 2D student as a diffusers pipeline.

    pipe = ui3d.OneStepPipeline.from_pretrained("outputs/distill2d-digits/<run>/pipeline")
    images = pipe(16, generator=torch.Generator().manual_seed(0)).images      # 16 PIL images, one step each
    pipe(class_labels=[3, 7]) · pipe("a red vase") · pipe(["a red vase", "a blue mug"]) · pipe(8, output_type="pt")

`OneStepStudent` (a `ModelMixin, ConfigMixin`) is Algorithm 1's G_θ(z, c) = D_θ(σ_init z, σ_init) rebuilt from its
config (the network's config, the teacher's scheduler config, σ_init, the sample shape and what conditions it
draws) around the run's EMA weights; `save_pretrained` writes `model_index.json`, `student/config.json` +
`diffusion_pytorch_model.safetensors` (and the text encoder, tokenizer and VAE of a text student), nothing pickled,
plus a `pipeline.py` for `diffusers.DiffusionPipeline.from_pretrained(folder, custom_pipeline=folder/pipeline.py,
trust_remote_code=True)`. `OneStepPipeline.from_pretrained` runs no code from the folder: it accepts only the
component classes below, safetensors weights and its own class. With a number of images only, the conditions are
drawn as training drew them, so `pipe(n, generator=torch.Generator().manual_seed(s))` gives what
`ui3d.load_student(run).sample(n, seed=s)` gives.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import ConfigMixin, DDPMScheduler, DiffusionPipeline, ModelMixin, UNet2DConditionModel, UNet2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from safetensors import safe_open
from torch import Tensor

from ui3d import files
from ui3d.diffusion.schedules import VPDiscrete
from ui3d.distill2d.networks import MLPDenoiser, OneStepGenerator, UNetDenoiser
from ui3d.teachers.teacher import check_prompts, decode, encode_text

NETWORKS = {"UNet2DModel": UNet2DModel, "UNet2DConditionModel": UNet2DConditionModel}
"""The UNets a student may be (the denoiser of `unet-teacher` and `text-teacher`); `mlp` is `MLPDenoiser`."""

COMPONENTS = {
    "student": {(__name__, "OneStepStudent")},
    "text_encoder": {("transformers", "CLIPTextModel")},
    "tokenizer": {("transformers", "CLIPTokenizer"), ("transformers", "CLIPTokenizerFast"),
                  ("transformers", "PreTrainedTokenizerFast"), ("transformers", "TokenizersBackend")},
    "vae": {("diffusers", "AutoencoderKL")},
}
"""The only (library, class) each component of a saved student may name in `model_index.json`."""

WEIGHTS = {"student": "diffusion_pytorch_model.safetensors", "text_encoder": "model.safetensors",
           "vae": "diffusion_pytorch_model.safetensors"}

PIPELINE_PY = '''"""ui3d's one-step student: diffusers.DiffusionPipeline.from_pretrained(<this folder>,
custom_pipeline="<this folder>/pipeline.py", trust_remote_code=True) with ui3d importable. Without running this
file: import ui3d; ui3d.OneStepPipeline.from_pretrained(<this folder>)."""
from ui3d.distill2d.pipeline import OneStepPipeline, OneStepStudent  # noqa: F401
'''


class OneStepStudent(ModelMixin, ConfigMixin):
    """G_θ(z, c): a denoiser (a diffusers UNet or `MLPDenoiser`) read once at σ_init (`OneStepGenerator`)."""

    @register_to_config
    def __init__(self, network: str = "UNet2DModel", network_config: dict | None = None,
                 scheduler_config: dict | None = None, prediction_type: str = "epsilon", sigma_init: float = 2.5,
                 sample_shape: list | None = None, num_classes: int = 0, prompts: list | None = None):
        """`network`: `UNet2DModel`, `UNet2DConditionModel` (built from `network_config`) or `mlp`
        (`network_config`: MLPDenoiser's sizes); `scheduler_config`: the teacher's DDPM-family schedule;
        `num_classes` > 0: class-conditional; `prompts`: a text student's training prompts."""
        super().__init__()
        alphas_cumprod = VPDiscrete.from_scheduler(DDPMScheduler.from_config(scheduler_config or {})).alphas_cumprod
        if network == "mlp":
            denoiser = MLPDenoiser(alphas_cumprod=alphas_cumprod, **(network_config or {}))
        elif network in NETWORKS:
            denoiser = UNetDenoiser(NETWORKS[network].from_config(network_config or {}), alphas_cumprod,
                                    prediction_type)
        else:
            raise ValueError(f"a one-step student's network is one of mlp, {', '.join(NETWORKS)}, not '{network}'")
        self.generator = OneStepGenerator(denoiser, sigma_init)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.generator(z, cond)


class OneStepPipeline(DiffusionPipeline):
    """One network evaluation per sample: `pipe(n | prompt(s), class_labels=..., generator=...)`."""

    model_cpu_offload_seq = "text_encoder->student->vae"
    _optional_components = ["text_encoder", "tokenizer", "vae"]

    def __init__(self, student: OneStepStudent, text_encoder=None, tokenizer=None, vae=None):
        super().__init__()
        self.register_modules(student=student, text_encoder=text_encoder, tokenizer=tokenizer, vae=vae)

    @classmethod
    def from_system(cls, system) -> OneStepPipeline:
        """The EMA generator of a `Distill2DSystem` with what its teacher gives to draw conditions."""
        teacher, denoiser = system.teacher, system.ema.denoiser
        inputs = teacher.student_inputs()
        if isinstance(denoiser, MLPDenoiser):
            network, network_config = "mlp", dict(denoiser.sizes)
        else:
            network = type(denoiser.unet).__name__
            network_config = {k: v for k, v in denoiser.unet.config.items() if not k.startswith("_")}
        student = OneStepStudent(network, network_config, teacher.scheduler_config,
                                 getattr(denoiser, "prediction_type", "epsilon"), system.cfg.sigma_init,
                                 list(teacher.shape), inputs.get("num_classes", 0), inputs.get("prompts"))
        student.generator.load_state_dict(system.ema.state_dict())
        return cls(student.eval(), inputs.get("text_encoder"), inputs.get("tokenizer"), inputs.get("vae"))

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """diffusers' folder with safetensors weights only, plus `pipeline.py` (for `custom_pipeline=`)."""
        super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        files.write_text(Path(save_directory) / "pipeline.py", PIPELINE_PY)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> OneStepPipeline:
        """A saved student folder, checked first (`check_folder`); no code from the folder runs."""
        if {"custom_pipeline", "trust_remote_code"} & kwargs.keys():
            raise ValueError("OneStepPipeline.from_pretrained runs no code from the folder; for its pipeline.py use "
                             "diffusers.DiffusionPipeline.from_pretrained(folder, custom_pipeline=..., "
                             "trust_remote_code=True)")
        path = check_folder(Path(pretrained_model_name_or_path))
        try:
            pipe = super().from_pretrained(str(path), use_safetensors=True, **kwargs)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            reason = str(err).strip().splitlines()[0][:200].rstrip(".") if str(err).strip() else type(err).__name__
            raise files.UnreadableFile(f"student pipeline {path} cannot be loaded: {reason}. Export it again: "
                                       "python launch.py --export resume=<its 2D run>") from None
        for name, weights in WEIGHTS.items():  # diffusers and transformers fill a missing tensor at random
            module = getattr(pipe, name, None)
            if module is not None:
                with safe_open(path / name / weights, "pt") as f:
                    missing = sorted(set(module.state_dict()) - set(f.keys()))
                if missing:
                    raise files.UnreadableFile(f"{path / name / weights} lacks {len(missing)} tensor(s) "
                                               f"({', '.join(missing[:3])}): export the pipeline again")
        return pipe

    # --- sampling -----------------------------------------------------------------------------------------
    def _conditions(self, prompt, class_labels, n: int | None, generator) -> tuple[Tensor | None, int]:
        """(the student's condition, number of samples): given prompts / labels, or drawn as training drew them."""
        cfg = self.student.config
        if cfg.prompts:
            if class_labels is not None:
                raise ValueError("this student is text-conditional: give prompt=..., not class_labels")
            prompts = [prompt] * (n or 1) if isinstance(prompt, str) else list(prompt or cfg.prompts)
            check_prompts(self.tokenizer, prompts, self.name_or_path or "student")
            embeddings = encode_text(self.tokenizer, self.text_encoder, prompts).to(self.device)
            if prompt is not None:
                return embeddings, len(prompts)
            idx = torch.randint(0, len(prompts), (n or 1,), generator=generator)
            return embeddings[idx.to(embeddings.device)], n or 1
        if prompt is not None:
            raise ValueError("this student is not text-conditional: give a number of images"
                             + (" or class_labels=[...]" if cfg.num_classes else ""))
        if not cfg.num_classes:
            if class_labels is not None:
                raise ValueError("this student is unconditional: give a number of images, not class_labels")
            return None, n or 1
        if class_labels is None:
            return torch.randint(0, cfg.num_classes, (n or 1,), generator=generator).to(self.device), n or 1
        labels = torch.as_tensor([class_labels] if isinstance(class_labels, int) else list(class_labels))
        if labels.dim() != 1 or labels.is_floating_point() or not ((labels >= 0) & (labels < cfg.num_classes)).all():
            raise ValueError(f"class_labels must be integers in [0, {cfg.num_classes})")
        return labels.to(self.device), len(labels)

    @torch.no_grad()
    def __call__(self, prompt: int | str | list[str] | None = None, class_labels: int | list[int] | None = None,
                 batch_size: int | None = None, generator: torch.Generator | None = None, output_type: str = "pil",
                 return_dict: bool = True):
        """`pipe(n)` (n samples, conditions drawn as in training), `pipe("a prompt", batch_size=n)`,
        `pipe(["p1", "p2"])`, `pipe(class_labels=[3, 7])`. `output_type`: `pil` (images), `np` ([B, H, W, C] in
        [0, 1]; [B, D] for vector students), `pt` ([B, C, H, W]; [B, D]). The noise is drawn on the CPU from
        `generator`, so a seed gives the same samples on every device."""
        if isinstance(prompt, int):
            prompt, batch_size = None, prompt
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type is pil, np or pt, not '{output_type}'")
        cond, n = self._conditions(prompt, class_labels, batch_size, generator)
        shape = tuple(self.student.config.sample_shape)
        z = torch.randn(n, *shape, generator=generator).to(self.device, self.student.dtype)
        x = self.student(z, cond)
        if len(shape) == 1:  # vectors (a mixture student)
            if output_type == "pil":
                raise ValueError("this student makes vectors, not images: use output_type='pt' or 'np'")
            out = x if output_type == "pt" else x.cpu().float().numpy()
        else:
            images = decode(x, self.vae)
            out = images if output_type == "pt" else images.cpu().permute(0, 2, 3, 1).float().numpy()
            out = self.numpy_to_pil(out) if output_type == "pil" else out
        return ImagePipelineOutput(images=out) if return_dict else (out,)


def check_folder(path: Path) -> Path:
    """A saved student folder as `OneStepPipeline.from_pretrained` accepts it: its `model_index.json` names this
    pipeline and only the components of `COMPONENTS`, no component holds Python code, and each weighted one has
    its safetensors file; otherwise `UnreadableFile` says what is wrong."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise files.UnreadableFile(f"{path} is not a saved student pipeline (no model_index.json): give the folder "
                                   "a 2D run writes (<run>/pipeline) or `python launch.py --export resume=<run>`")
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise files.UnreadableFile(f"{index_file} is not valid JSON ({err}): export the pipeline again") from None
    if not isinstance(index, dict) or index.get("_class_name") != "OneStepPipeline" or "student" not in index:
        raise files.UnreadableFile(f"{index_file} does not describe a OneStepPipeline with a student: export the "
                                   "pipeline again")
    code = sorted(str(f.relative_to(path)) for f in path.glob("*/*.py"))
    if code:  # diffusers would ask to run a component's own module file (a custom component)
        raise files.UnreadableFile(f"{path} holds Python code in its components ({', '.join(code)}); a student "
                                   "pipeline has none: refused")
    for name, spec in index.items():
        if name.startswith("_") or spec in (None, [None, None]):
            continue
        if name not in COMPONENTS or not isinstance(spec, list) or tuple(spec) not in COMPONENTS[name]:
            raise files.UnreadableFile(f"{index_file}: component '{name}' is {spec}, which a student pipeline does "
                                       "not load (it would import other code); refused")
        weights = path / name / WEIGHTS[name] if name in WEIGHTS else None
        if weights is not None and not weights.is_file():
            raise files.UnreadableFile(f"{weights} is missing (weights load from safetensors only): export the "
                                       "pipeline again")
    return path
