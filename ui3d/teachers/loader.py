"""The one place weights are loaded: diffusers folders (Stable Diffusion, DeepFloyd-style pixel models, the
embedded and digits teachers), hub ids resolved from the local Hugging Face cache only, and single-file Stable
Diffusion 1.x/2.x checkpoints (`.safetensors`, or `.ckpt` read with `weights_only=True`) in the original (LDM)
layout, converted by diffusers' single-file converters with the component configs, tokenizer and scheduler of a
diffusers folder (`teacher_config`, or the one diffusers infers from the checkpoint, from the local cache).
Components are built from the folder's `model_index.json` classes, so any `UNet2DConditionModel` checkpoint with a
text encoder loads."""
from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ui3d.teachers.teacher import DiffusionTeacher

if TYPE_CHECKING:
    from diffusers import DDPMScheduler, UNet2DModel

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded" / "weights"
DIGITS_DIR = Path(__file__).resolve().parent / "digits" / "weights"
COMPONENTS = ("unet", "scheduler", "text_encoder", "tokenizer", "vae")


class TeacherNotFound(FileNotFoundError):
    """A teacher that is neither a folder nor in the local cache."""


class BrokenTeacher(TeacherNotFound):
    """A teacher folder that is there but cannot be loaded (its model_index.json, subfolders or weights)."""


SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
"""A teacher given as one file in the original (LDM) layout, as checkpoints are shared outside diffusers."""


def is_single_file(name_or_path: str) -> bool:
    return Path(str(name_or_path)).suffix in SINGLE_FILE_SUFFIXES


def resolve_model_path(name_or_path: str) -> Path:
    """`embedded` → the shipped teacher; a folder or a single-file checkpoint → itself; a hub id → its snapshot in
    the local HF cache."""
    if name_or_path in ("embedded", ""):
        if not (EMBEDDED_DIR / "model_index.json").is_file():
            raise TeacherNotFound(
                f"the embedded teacher is missing from {EMBEDDED_DIR}; train it with "
                "`python -m ui3d.teachers.embedded.train`"
            )
        return EMBEDDED_DIR
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if is_single_file(name_or_path):
        if not path.is_file():
            raise TeacherNotFound(f"the teacher checkpoint {path} does not exist: give an existing .safetensors/.ckpt "
                                  "file, a diffusers folder or a cached hub id")
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception as err:  # any miss: not cached, bad id, offline
        raise TeacherNotFound(
            f"'{name_or_path}' is neither a folder nor a model in the local Hugging Face cache, and no hub is "
            f"reached at run time. Download it where there is internet (`huggingface-cli download {name_or_path}`) "
            f"and copy the cache, or pass the folder's path. ({type(err).__name__})"
        ) from None


def _component_class(library: str, class_name: str):
    return getattr(importlib.import_module(library), class_name)


WEIGHTED = ("unet", "text_encoder", "vae")
"""Components with weights: loaded from safetensors only (a pickled `.bin` could run code when loaded)."""


def read_model_index(path: Path, needed: tuple[str, ...] = ("unet", "scheduler", "text_encoder", "tokenizer")) -> dict:
    """`model_index.json` of a teacher folder, checked: valid JSON, the `needed` components named, each with its
    subfolder and config, weighted ones with a `.safetensors` file. Any fault raises `TeacherNotFound` naming it."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise BrokenTeacher(f"{path} has no model_index.json: not a diffusers model folder (give the folder that "
                              "holds model_index.json, unet/, text_encoder/, tokenizer/, scheduler/)")
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BrokenTeacher(f"{index_file} is not valid JSON ({err}): restore it from the model's download") from None
    if not isinstance(index, dict):
        raise BrokenTeacher(f"{index_file} is not a JSON object of components: restore it from the model's download")
    vae = index.get("vae")
    for name in needed + (("vae",) if isinstance(vae, list) and vae and vae[0] else ()):
        spec = index.get(name)
        if not (isinstance(spec, list) and len(spec) == 2 and all(isinstance(x, str) for x in spec)):
            raise BrokenTeacher(f"{index_file} names no '{name}' component ([library, class]); not a text-to-image "
                                  "folder, or a damaged one: restore it from the model's download")
        sub = path / name
        if not sub.is_dir() or not any(sub.glob("*.json")):
            raise BrokenTeacher(f"{path} lacks the subfolder {name}/ with its config that model_index.json names: "
                                  "copy the whole model folder")
        if name in WEIGHTED and not any(sub.glob("*.safetensors")):
            raise BrokenTeacher(f"{sub} has no .safetensors weights (pickled .bin files are not loaded: they can run "
                                  "code); convert them with diffusers' save_pretrained(safe_serialization=True)")
    return index


UNSUPPORTED = {"StableDiffusionXL": "SDXL (two text encoders and added time embeddings)",
               "IF": "DeepFloyd IF (a T5 text encoder, learned variance and cascaded pixel stages)"}
"""Pipelines whose folders look loadable but whose UNets this teacher cannot drive, by `_class_name` prefix."""


def check_supported(path: Path, index: dict) -> None:
    """Refuse SDXL and DeepFloyd IF folders, naming what is missing (SD 1.x/2.x folders and pixel teachers load)."""
    name = str(index.get("_class_name", ""))
    for prefix, what in UNSUPPORTED.items():
        if name.startswith(prefix) or (prefix == "StableDiffusionXL" and "text_encoder_2" in index):
            raise BrokenTeacher(f"{path} is a {name or 'SDXL'} folder: {what} is not supported; give a Stable "
                                "Diffusion 1.x/2.x folder (or the embedded teacher)")


def lora_file(lora: str) -> Path:
    """The LoRA file `teacher_lora` names: an existing `.safetensors` file (a pickle could run code)."""
    path = Path(lora).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        raise BrokenTeacher(f"teacher_lora={lora}: give an existing LoRA .safetensors file (pickled .bin/.ckpt files "
                            "are not loaded: they can run code)")
    return path


def fuse_lora(parts: dict, lora: str, scale: float = 1.0) -> None:
    """Fuse LoRA weights (a diffusers/kohya `.safetensors` file) into the teacher's UNet and text encoder, as
    `pipe.load_lora_weights(...); pipe.fuse_lora(); pipe.unload_lora_weights()` do: the teacher is then a plain
    model with changed weights, and the fake score's own adapters go on top."""
    import copy

    from diffusers import StableDiffusionPipeline

    path = lora_file(lora)
    if parts.get("vae") is None:
        raise BrokenTeacher(f"teacher_lora={lora}: LoRA fusing needs a latent Stable Diffusion teacher (this one has no VAE)")
    pipe = StableDiffusionPipeline(**{k: parts[k] for k in ("unet", "vae", "text_encoder", "tokenizer")},
                                   scheduler=copy.deepcopy(parts["scheduler"]), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    try:
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="teacher_lora")
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        raise BrokenTeacher(f"teacher_lora={lora} cannot be loaded into this teacher: {str(err).splitlines()[0][:200]}") from None
    pipe.fuse_lora(lora_scale=scale, adapter_names=["teacher_lora"])
    pipe.unload_lora_weights()


class _LazyCheckpoint(Mapping):
    """The tensors of a `.safetensors` file read one at a time on access (diffusers' model-type inference reads
    a few keys; the whole file is read only to load the weights)."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self._file = safe_open(str(path), framework="pt")
        self._keys = list(self._file.keys())
        self._key_set = set(self._keys)

    def __contains__(self, key) -> bool:
        return key in self._key_set

    def __getitem__(self, key):
        if key not in self._key_set:
            raise KeyError(key)
        return self._file.get_tensor(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def read_single_file(path: Path, lazy: bool = False) -> Mapping:
    """The state dict of a single-file checkpoint: safetensors, or a `.ckpt` unpickled with `weights_only=True`
    (one that needs code to load is refused); nested `state_dict` entries unwrapped. Faults → `BrokenTeacher`."""
    from ui3d.files import UnreadableFile, torch_load

    try:
        if path.suffix == ".safetensors":
            if lazy:
                return _LazyCheckpoint(path)
            from safetensors.torch import load_file

            checkpoint = load_file(str(path))
        else:
            checkpoint = torch_load(path)
    except UnreadableFile as err:
        raise BrokenTeacher(str(err)) from None
    except Exception as err:  # safetensors' own errors: a truncated or foreign file
        raise BrokenTeacher(f"{path} is not a readable safetensors checkpoint ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:120]})") from None
    while isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):  # Lightning/LDM nesting
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise BrokenTeacher(f"{path} holds no state dict: not a Stable Diffusion checkpoint")
    return checkpoint


def single_file_config(path: Path, checkpoint: dict, config: str | None) -> Path:
    """The diffusers folder whose component configs, tokenizer and scheduler go with the single-file checkpoint:
    `config` (a folder or cached hub id), or the repository diffusers infers from the checkpoint's keys (SD 1.x →
    stable-diffusion-v1-5, 2.x → stable-diffusion-2-1 or -2-1-base), from the local cache."""
    if config:
        return resolve_model_path(config)
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    if "model.diffusion_model.input_blocks.0.0.weight" not in checkpoint:
        raise BrokenTeacher(f"{path} is not a Stable Diffusion checkpoint in the original layout (no "
                            "model.diffusion_model.* UNet weights); give a diffusers folder instead")
    repo = fetch_diffusers_config(checkpoint)["pretrained_model_name_or_path"]
    try:
        return resolve_model_path(repo)
    except TeacherNotFound:
        raise TeacherNotFound(f"{path} looks like {repo}, whose configs, tokenizer and scheduler are not in the local "
                              f"cache: give teacher_config=<a diffusers folder or cached hub id of the same "
                              f"architecture> (or download {repo} where there is internet)") from None


def _load_single_file(path: Path, config: str | None, dtype, with_vae: bool) -> tuple[dict, Path]:
    """Teacher components from a single-file checkpoint and the diffusers folder of its configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    checkpoint = read_single_file(path)
    folder = single_file_config(path, checkpoint, config)
    index = read_model_index(folder, needed=("unet", "scheduler", "text_encoder", "tokenizer"))
    check_supported(folder, index)
    common = {"config": str(folder), "torch_dtype": dtype, "local_files_only": True}
    try:
        parts = {"unet": UNet2DConditionModel.from_single_file(checkpoint, subfolder="unet", **common)}
        if with_vae and index.get("vae", [None])[0]:
            parts["vae"] = AutoencoderKL.from_single_file(checkpoint, subfolder="vae", **common)
        parts["text_encoder"] = create_diffusers_clip_model_from_ldm(
            _component_class(*index["text_encoder"]), checkpoint, subfolder="text_encoder", **common)
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        raise BrokenTeacher(f"{path} does not match the architecture of {folder} ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:160]}); give teacher_config=<the diffusers folder of this "
                            "model's architecture>") from None
    for name in ("tokenizer", "scheduler"):
        parts[name] = _component_class(*index[name]).from_pretrained(folder, subfolder=name)
    return parts, folder


def load_teacher(name_or_path: str = "embedded", device: str | torch.device = "cpu", dtype=torch.float32,
                 with_vae: bool = True, lora: str | None = None, lora_scale: float = 1.0,
                 config: str | None = None) -> DiffusionTeacher:
    """Load a text-conditioned diffusion teacher (eval mode, no gradients on its parameters), with `lora` (a
    LoRA `.safetensors` file) fused into it at `lora_scale`. A single-file checkpoint takes its configs, tokenizer
    and scheduler from `config` (see `single_file_config`)."""
    path = resolve_model_path(name_or_path)
    if path.is_file():
        parts, folder = _load_single_file(path, config, dtype, with_vae)
    else:
        parts, folder = _load_folder(path, dtype, with_vae), path
    if lora:
        fuse_lora(parts, lora, lora_scale)
    teacher = DiffusionTeacher(name=str(name_or_path), **parts).to(device)
    stamps = [f.stat().st_mtime_ns for sub in ("text_encoder", "tokenizer") for f in (folder / sub).glob("*")]
    stamps += [path.stat().st_mtime_ns] if path.is_file() else []
    teacher.fingerprint = f"{path.resolve()}@{max(stamps, default=0)}"  # keys caches of text embeddings etc.
    if lora:
        lora_path = Path(lora).expanduser().resolve()
        teacher.fingerprint += f"+{lora_path}@{lora_path.stat().st_mtime_ns}x{lora_scale}"
    teacher.requires_grad_(False)
    return teacher.eval()


def _load_folder(path: Path, dtype, with_vae: bool) -> dict:
    index = read_model_index(path)
    check_supported(path, index)
    parts = {}
    for name in COMPONENTS:
        spec = index.get(name)
        if not spec or spec[0] is None or (name == "vae" and not with_vae):
            continue
        cls = _component_class(*spec)
        kwargs = {"torch_dtype": dtype, "use_safetensors": True} if name in WEIGHTED else {}
        parts[name] = cls.from_pretrained(path, subfolder=name, **kwargs)
    missing = [n for n in ("unet", "scheduler", "text_encoder", "tokenizer") if n not in parts]
    if missing:
        raise TeacherNotFound(f"{path} lacks {', '.join(missing)} in model_index.json; not a text-to-image folder")
    return parts


def unet_folder(name_or_path: str | Path = "digits") -> Path:
    """The folder of a diffusers `UNet2DModel` teacher, checked without loading it: `digits` → the shipped MNIST
    teacher; otherwise a folder with `unet/` (+ `scheduler/`, else DDPM's 1000-step default) or a bare UNet folder
    (`config.json`). Missing → `TeacherNotFound`, a damaged config or pickled-only weights → `BrokenTeacher`."""
    digits = str(name_or_path) == "digits"
    path = DIGITS_DIR if digits else Path(name_or_path).expanduser()
    unet_dir = path / "unet" if (path / "unet").is_dir() else path
    config = unet_dir / "config.json"
    if not config.is_file():
        hint = " (train it: python -m ui3d.teachers.digits.train)" if digits else ""
        raise TeacherNotFound(f"unet-teacher: no diffusers UNet folder at {path}{hint}")
    try:
        json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BrokenTeacher(f"{config} is not valid JSON ({err}): restore it from the model's folder") from None
    if not any(unet_dir.glob("*.safetensors")):
        raise BrokenTeacher(f"{unet_dir} has no .safetensors weights (pickled .bin files are not loaded: they can run "
                            "code); convert them with diffusers' save_pretrained(safe_serialization=True)")
    return path


def load_unet_teacher(name_or_path: str | Path = "digits",
                      device: str | torch.device = "cpu") -> tuple[UNet2DModel, DDPMScheduler, Path]:
    """A diffusers `UNet2DModel` teacher (`unet_folder`) as (UNet, DDPM scheduler, folder): eval mode, parameters
    frozen. Weights that do not load (a config that does not match them, a truncated file) → `BrokenTeacher`."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = unet_folder(name_or_path)
    unet_dir = path / "unet" if (path / "unet").is_dir() else path
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=True).to(device)
        scheduler = (DDPMScheduler.from_pretrained(path / "scheduler") if (path / "scheduler").is_dir()
                     else DDPMScheduler(num_train_timesteps=1000))
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as err:
        raise BrokenTeacher(f"{path} does not load as a diffusers UNet2DModel teacher ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:160]})") from None
    return unet.eval().requires_grad_(False), scheduler, path


def load_digits_teacher(path: str | Path | None = None,
                        device: str | torch.device = "cpu") -> tuple[UNet2DModel, DDPMScheduler]:
    """The class-conditional MNIST teacher as (UNet2DModel, DDPMScheduler): eval mode, parameters frozen.
    Class labels 0-9 are digits, 10 the unconditional (null) label; images are [B, 1, 16, 16] in [-1, 1]."""
    path = Path(path) if path is not None else DIGITS_DIR
    if not (path / "unet" / "config.json").is_file():
        raise TeacherNotFound(f"no digits teacher in {path} (expected unet/ and scheduler/); train it with "
                              f"`python -m ui3d.teachers.digits.train --out {path}`")
    unet, scheduler, _ = load_unet_teacher(path, device)
    return unet, scheduler


def load_tokenizer(name_or_path: str = "embedded", config: str | None = None):
    """Only the tokenizer (cheap): enough to check prompts before a run starts. For a single-file checkpoint, its
    config folder's (only the few tensors diffusers infers the model from are read)."""
    path = resolve_model_path(name_or_path)
    if path.is_file():
        path = single_file_config(path, read_single_file(path, lazy=True), config)
    index = read_model_index(path)
    check_supported(path, index)
    library, class_name = index["tokenizer"]
    return _component_class(library, class_name).from_pretrained(path, subfolder="tokenizer")
