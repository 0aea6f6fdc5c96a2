"""Prompt processor (threestudio's): view-dependent prompts as DreamFusion builds them, a negative prompt, and
text embeddings computed once and cached on disk keyed by teacher and prompt."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ui3d import files, register
from ui3d.data.cameras import DIRECTIONS, view_direction, view_prompt
from ui3d.teachers.teacher import DiffusionTeacher


@dataclass
class PromptEmbeds:
    """Per-view text embeddings for a batch of cameras."""

    cond: Tensor
    """[B, L, C] embeddings of the view-dependent prompts."""
    uncond: Tensor
    """[B, L, C] embeddings of the negative prompt (CFG's unconditional branch)."""
    prompts: list[str]
    """The B view-dependent prompts."""
    directions: list[str]
    """The B view names (front / side / back / overhead)."""


def without_words(prompt: str, words) -> str:
    """`prompt` without `words` (whole words, case-insensitive); a leading "a"/"an" follows the next word."""
    drop = {w.lower() for w in words}
    kept = [w for w in prompt.split() if w.lower() not in drop]
    if len(kept) == len(prompt.split()):
        return prompt
    if len(kept) > 1 and kept[0].lower() in ("a", "an"):
        article = "an" if kept[1][:1].lower() in "aeiou" else "a"
        kept[0] = article.capitalize() if kept[0][0].isupper() else article
    if not kept or (len(kept) == 1 and kept[0].lower() in ("a", "an")):
        raise ValueError(f"prompt_processor.drop_words {sorted(drop)} leave nothing of the prompt '{prompt}'")
    return " ".join(kept)


def styled_prompt(prompt: str, template: str = "{prompt}", drop_words=()) -> str:
    """The text the teacher sees: `prompt` without `drop_words`, put in `template` ("a normal map of {prompt}")."""
    if template.count("{prompt}") != 1:
        raise ValueError(f"prompt_processor.prompt_template must contain {{prompt}} once, got {template!r} "
                         '(e.g. "a normal map of {prompt}")')
    return template.replace("{prompt}", without_words(prompt, drop_words))


@register("prompt-processor")
class PromptProcessor:
    """Turns (elevation, azimuth) into embeddings of "<prompt>, <view> view"."""

    @dataclass
    class Config:
        pretrained_model_name_or_path: str = "embedded"
        """The teacher whose text encoder embeds the prompts (the system loads it once for guidance too)."""
        prompt: str = "a vase"
        """The text prompt."""
        prompt_template: str = "{prompt}"
        """The text the teacher sees, `{prompt}` standing for the prompt (after `drop_words`): e.g.
        "a normal map of {prompt}" in a geometry stage that guides normal maps (the embedded teacher's style)."""
        negative_prompt: str = ""
        """Prompt of CFG's unconditional branch."""
        drop_words: list = field(default_factory=list)
        """Words left out of the prompt (case-insensitive), e.g. the pattern words in a geometry stage whose
        albedo is fixed: there the teacher could only answer them by carving the pattern into the surface."""
        view_dependent_prompting: bool = True
        """Append DreamFusion's ", <view> view" by camera direction."""
        front_threshold: float = 45.0
        """|azimuth| below this is the front view (degrees)."""
        back_threshold: float = 45.0
        """|azimuth| above 180 minus this is the back view."""
        overhead_threshold: float = 60.0
        """Elevation above this is the overhead view."""
        use_cache: bool = True
        """Cache embeddings on disk."""
        cache_dir: str = ".cache/ui3d/text_embeddings"
        """Where cached embeddings live (keyed by teacher and prompt)."""

    def __init__(self, cfg: "PromptProcessor.Config", teacher: DiffusionTeacher):
        self.cfg = cfg
        self.prompt = styled_prompt(cfg.prompt, cfg.prompt_template, cfg.drop_words)
        """The prompt without `drop_words`, in the template ("a blue dotted ball" without "dotted": "a blue ball")."""
        texts = [self.text_for(d) for d in DIRECTIONS] + [cfg.negative_prompt]
        teacher.check_prompts(texts)  # unknown words fail here, before any training
        embeds = [self._embed(teacher, text) for text in texts]
        self.by_direction = dict(zip(DIRECTIONS, embeds[:-1]))
        self.uncond = embeds[-1]

    def text_for(self, direction: str) -> str:
        return view_prompt(self.prompt, direction) if self.cfg.view_dependent_prompting else self.prompt

    def _embed(self, teacher: DiffusionTeacher, text: str) -> Tensor:
        dtype = next(teacher.text_encoder.parameters()).dtype  # fp16 embeddings are not an fp32 run's
        key = hashlib.sha256(f"{teacher.fingerprint}\n{dtype}\n{text}".encode()).hexdigest()[:24]
        path = Path(self.cfg.cache_dir) / f"{key}.pt"
        if self.cfg.use_cache and (emb := files.load_cache(path, "text-embedding cache")) is not None:
            return emb
        emb = teacher.encode_text([text])[0].detach().cpu()
        if self.cfg.use_cache:
            files.torch_save(emb, path)
        return emb

    def __call__(self, elevation: Tensor, azimuth: Tensor) -> PromptEmbeds:
        c = self.cfg
        directions = view_direction(elevation, azimuth, c.front_threshold, c.back_threshold, c.overhead_threshold)
        if not c.view_dependent_prompting:
            directions = ["side"] * len(directions)
        cond = torch.stack([self.by_direction[d] for d in directions])
        uncond = self.uncond.expand(len(directions), *self.uncond.shape)
        return PromptEmbeds(cond, uncond, [self.text_for(d) for d in directions], directions)

    def apply(self, fn) -> None:
        """A `Module._apply` conversion (device, dtype) on the cached embeddings: they follow the system."""
        self.by_direction = {d: fn(e) for d, e in self.by_direction.items()}
        self.uncond = fn(self.uncond)
