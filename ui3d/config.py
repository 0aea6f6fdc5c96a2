"""Experiment configs: YAML + `key=value` overrides, checked against the `Config` dataclasses of registered parts.

A config names its parts threestudio-style, `<part>_type: name` beside a `<part>:` block; every block whose part
is registered is checked against that class's `Config`, so a misspelt key fails before anything runs, with the
file and line (or the command line) it came from and the closest valid key. Parsing writes nothing.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ui3d.registry import find, is_registered, names as registered

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SHORTHANDS = {"prompt": "system.prompt_processor.prompt"}
"""CLI shorthands a user types for long dotted keys (the other shorthands are top-level keys already)."""


class ConfigError(ValueError):
    """A config that cannot run: the message says what is wrong and how to fix it."""


@dataclass
class TrainerConfig:
    """How a stage is stepped (the subset of Lightning's Trainer arguments a run needs)."""

    max_steps: int = 1000
    """Optimisation steps of the stage."""
    val_check_interval: int = 200
    """Steps between validation renders."""
    checkpoint_every: int = 200
    """Steps between checkpoints (the last step always writes one)."""
    log_every_n_steps: int = 10
    """Steps between scalar logs."""
    accelerator: str = "auto"
    """`cpu`, `gpu` or `auto`."""
    devices: int = 1
    """Processes per node (DDP when > 1)."""
    num_nodes: int = 1
    """Nodes for DDP."""
    strategy: str = "auto"
    """Lightning strategy: `auto` (DDP when devices × nodes > 1), `ddp`, `ddp_spawn`, …"""
    precision: str = "32"
    """Lightning precision string: `32`, `16-mixed`, `bf16-mixed`."""
    gradient_clip_val: float | None = None
    """Clip the gradients (Lightning's key; text-to-3D stages): their norm, or each value with
    `gradient_clip_algorithm: value`; null: no clipping."""
    gradient_clip_algorithm: str = "norm"
    """`norm` or `value`."""
    accumulate_grad_batches: int = 1
    """Optimiser step every N batches (text-to-3D stages; a step of `max_steps` is then N renders)."""
    max_epochs: int | None = None
    """Accepted for threestudio configs: a stage ends at `max_steps` (null or -1 only)."""
    num_sanity_val_steps: int = 0
    """Validation batches run before training (Lightning's sanity check)."""
    enable_progress_bar: bool = True
    """The console's per-stage bar."""
    logger: str = "csv"
    """Where scalars go besides `logs/metrics.csv` (always written; TensorBoard too when installed): `csv` (nothing
    else) or `wandb` (Lightning's WandbLogger, run files in `<stage>/wandb/`; offline unless WANDB_MODE is set;
    project `WANDB_PROJECT` or the run's `name`; needs `pip install wandb`)."""


LOGGERS = ("csv", "wandb")
"""The values of `trainer.logger`."""


@dataclass
class StageConfig:
    """One stage of a multi-stage run: overrides merged onto the run's `system` and `trainer`."""

    system_type: str = ""
    """The stage's system; empty keeps the run's `system_type`."""
    system: dict = field(default_factory=dict)
    """Overrides merged onto the run's `system` block."""
    data: dict = field(default_factory=dict)
    """Overrides merged onto the run's `data` block (e.g. a stage's resolution)."""
    trainer: dict = field(default_factory=dict)
    """Overrides merged onto the run's `trainer` block."""
    convert_from: Optional[str] = None
    """Earlier stage whose last checkpoint initialises this one (threestudio's `geometry_convert_from`)."""
    guidance_from: Optional[str] = None
    """Earlier stage whose guidance state (fake score, camera embedding, discriminator, ratio statistics) this
    stage's guidance starts from, instead of a fresh one; the two guidances must be of one type."""


@dataclass
class ExperimentConfig:
    """A run: who it is (`name`, `tag`), how it is seeded, what it trains and in which stages."""

    name: str = "default"
    """Run family; runs go to `<exp_root_dir>/<name>/<tag>@<timestamp>/`."""
    description: str = ""
    """Free text shown by `--dry-run`."""
    tag: str = ""
    """Run label; empty means the prompt with spaces as underscores (threestudio)."""
    seed: int = 0
    """Seed of every random generator."""
    exp_root_dir: str = "outputs"
    """Where run directories are made."""
    use_timestamp: bool = True
    """Append `@YYYYmmdd-HHMMSS` to the run directory."""
    steps: Optional[int] = None
    """Caps `trainer.max_steps` of every stage (quick runs)."""
    resume: Optional[str] = None
    """A run directory or checkpoint to resume, or `LAST` for the newest run of this name and tag."""
    system_type: str = ""
    """The registered system that trains."""
    system: dict = field(default_factory=dict)
    """The system's block, checked against its `Config`."""
    data_type: str = ""
    """The registered camera/data module."""
    data: dict = field(default_factory=dict)
    """The data module's block, checked against its `Config`."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """Stepping of every stage (stages may override)."""
    stages: dict = field(default_factory=dict)
    """Ordered `name: StageConfig`; empty means one stage named `main`."""


@dataclass
class Resolved:
    """A checked config (every `<part>_type` names a registered part whose block was checked)."""

    cfg: DictConfig


class _Locator:
    """Says where a dotted key came from: the command line or `file:line`."""

    def __init__(self, paths: list[Path], cli_keys: set[str]):
        self.path, self.cli_keys, self.lines = paths[-1], cli_keys, {}
        for path in paths:  # a config after its bases: the last file that sets a key is where it came from
            self._index(yaml.compose(path.read_text()), "", path)

    def _index(self, node: Any, prefix: str, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                dotted = f"{prefix}{key_node.value}"
                self.lines[dotted] = f"{path}:{key_node.start_mark.line + 1}"
                self._index(value_node, dotted + ".", path)

    def __call__(self, dotted: str) -> str:
        for key in self.cli_keys:
            if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
                return "on the command line"
        for candidate in (dotted, re.sub(r"^stages\.[^.]+\.", "", dotted)):
            if candidate in self.lines:
                return f"in {self.lines[candidate]}"
        return f"in {self.path}"


def _field_types(schema: type) -> dict[str, Any]:
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


def _unwrap_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is typing.Union and len(args) == 1 else tp


def _unknown_key(key: str, where: str, valid: list[str], locate: _Locator) -> ConfigError:
    dotted = f"{where}.{key}" if where else key
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    block = f"'{where}'" if where else "the top level"
    return ConfigError(
        f"unknown config key '{dotted}' {locate(dotted)}.{hint}\n  valid keys of {block}: {', '.join(sorted(valid))}"
    )


def check_block(schema: type, block: dict, where: str, locate: _Locator) -> None:
    """Check `block` against dataclass `schema` (keys, then types) and the parts it names."""
    types = _field_types(schema)
    for key, value in block.items():
        if key not in types:
            raise _unknown_key(key, where, list(types), locate)
        tp = _unwrap_optional(types[key])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            check_block(tp, value, f"{where}.{key}" if where else key, locate)
    try:
        OmegaConf.merge(OmegaConf.structured(schema), block)
    except OmegaConfBaseException as err:
        key = f"{where}.{err.full_key}" if where else str(err.full_key)
        raise ConfigError(f"bad value for '{key}' {locate(key)}: {str(err.msg).splitlines()[0]}") from None
    check_parts(block, where, locate, set(types))


def check_parts(block: dict, where: str, locate: _Locator, fields: set[str] = frozenset()) -> None:
    """Check every `<part>_type` + `<part>` pair inside `block` against the registered part's `Config`.

    `<x>_type` selects a part when a `<x>` block stands beside it or the schema (`fields`) declares one;
    other `*_type` keys (`normal_type: analytic`) are plain values. A name that is not registered fails with the
    closest registered ones.
    """
    for key, name in block.items():
        part = key[: -len("_type")]
        if not (key.endswith("_type") and isinstance(name, str) and name and (part in block or part in fields)):
            continue
        sub = block.get(part) or {}
        dotted = f"{where}.{part}" if where else part
        if not is_registered(name):
            key_dotted = f"{where}.{key}" if where else key
            close = difflib.get_close_matches(name, registered(), n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            stem = part.split(".")[-1].split("_")[0][:5]  # geometry -> ui3d.geometry.*, teacher -> *.teachers
            kind = [n for n in registered() if f".{stem}" in find(n).__module__] or registered()
            raise ConfigError(f"unknown {key} '{name}' {locate(key_dotted)}.{hint}\n  registered: {', '.join(kind)}")
        check_block(find(name).Config, sub, dotted, locate)


def config_path(name: str) -> Path:
    """A config file from a name under `configs/` or a path; a miss lists the configs that exist."""
    for candidate in (Path(name), CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    available = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml"))
    raise ConfigError(f"no config '{name}' (looked in . and {CONFIG_DIR}).\n  available: {', '.join(available)}")


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`key=value` strings (shorthands expanded) as a dotted-key dict."""
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not key=value (e.g. prompt=\"a vase\" or trainer.max_steps=100)")
        if key == "prompt" and not value.strip():
            raise ConfigError('prompt= is empty: say what to make, e.g. prompt="a red vase"')
        parsed[SHORTHANDS.get(key, key)] = value
    return parsed


def _load_chain(path: Path, extends: str | None = None, seen: tuple = ()) -> tuple[DictConfig, list[Path]]:
    """A config file merged over the files its `extends:` key names (one path or a list, relative to the file or
    to configs/; `extends` on the command line replaces the file's) by `merge_file`. Returns the merge and the
    files, bases first."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    raw = OmegaConf.load(path)
    bases = extends if extends is not None else raw.get("extends")
    if "extends" in raw:
        del raw["extends"]
    merged, files = OmegaConf.create(), []
    for base in [bases] if isinstance(bases, str) else list(bases or []):
        base_path = next((c for c in (path.parent / base, CONFIG_DIR / base) if c.is_file()), None)
        if base_path is None:
            raise ConfigError(f"{path}: extends '{base}', found neither next to it nor under {CONFIG_DIR}")
        sub, sub_files = _load_chain(base_path, None, seen + (path.resolve(),))
        merged, files = OmegaConf.merge(merged, sub), files + sub_files
    return merge_file(merged, raw), files + [path]


def load_config(name: str, overrides: list[str] = ()) -> Resolved:
    """Load a config, apply overrides, resolve interpolations and check every key; writes nothing."""
    path = config_path(name)
    cli = parse_overrides(list(overrides))
    try:
        raw, files = _load_chain(path, cli.pop("extends", None))
        merged = OmegaConf.merge(raw, OmegaConf.from_dotlist([f"{k}={v}" for k, v in cli.items()]))
        container = OmegaConf.to_container(merged, resolve=True)
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    if not isinstance(container, dict):
        raise ConfigError(f"config {path} must be a mapping of keys to values")
    container = canonical_types(container)
    locate = _Locator(files, set(cli))
    check_block(ExperimentConfig, container, "", locate)
    cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), container)
    for stage_name in container.get("stages") or {}:
        _check_stage(cfg, container["stages"][stage_name] or {}, stage_name, locate)
    check_ranges(cfg, locate)
    return Resolved(cfg)


def canonical_types(block):
    """The block with every `<part>_type` that names a threestudio alias (`registry.ALIASES`) renamed to ours, so
    that the run, its saved config.yaml and the loss names (`lambda_sds`) see one name."""
    from ui3d.registry import ALIASES

    if isinstance(block, dict):
        return {key: ALIASES.get(value, value) if key.endswith("_type") and isinstance(value, str)
                else canonical_types(value) for key, value in block.items()}
    if isinstance(block, list):
        return [canonical_types(value) for value in block]
    return block


def _check_stage(cfg: DictConfig, stage: dict, stage_name: str, locate: _Locator) -> None:
    where = f"stages.{stage_name}"
    check_block(StageConfig, stage, where, locate)
    check_block(TrainerConfig, stage.get("trainer") or {}, f"{where}.trainer", locate)
    effective = stage_block(cfg, stage_name)
    sub = OmegaConf.to_container(OmegaConf.masked_copy(effective, ["system_type", "system", "data_type", "data"]))
    check_parts(sub, where, locate)


SEED_MAX = 2**32 - 1
"""Largest seed numpy (and so Lightning's `seed_everything`) accepts."""


def check_ranges(cfg: DictConfig, locate: _Locator) -> None:
    """Values a type check lets through but no run can use: a negative seed, zero or negative steps."""
    if not 0 <= int(cfg.seed) <= SEED_MAX:
        raise ConfigError(f"seed={cfg.seed} {locate('seed')} is out of range: give an integer from 0 to {SEED_MAX}")
    if cfg.steps is not None and int(cfg.steps) < 1:
        raise ConfigError(f"steps={cfg.steps} {locate('steps')}: a run needs at least 1 step (e.g. steps=100), "
                          "or leave steps out for each stage's trainer.max_steps")
    for name in stage_names(cfg):
        block = stage_block(cfg, name).trainer
        prefix = f"stages.{name}.trainer." if cfg.stages else "trainer."
        for key in ("max_steps", "checkpoint_every", "val_check_interval", "log_every_n_steps",
                    "accumulate_grad_batches"):
            if int(block.get(key, 1)) < 1:
                raise ConfigError(f"{prefix}{key}={block[key]} {locate(prefix + key)} must be at least 1")
        if block.get("max_epochs") not in (None, -1):
            raise ConfigError(f"{prefix}max_epochs={block.max_epochs} {locate(prefix + 'max_epochs')}: a stage ends at "
                              "trainer.max_steps; remove max_epochs (or set it to -1)")
        if block.get("gradient_clip_val") is not None and float(block.gradient_clip_val) <= 0:
            raise ConfigError(f"{prefix}gradient_clip_val={block.gradient_clip_val} {locate(prefix + 'gradient_clip_val')} "
                              "must be positive (or null: no clipping)")
        if block.get("gradient_clip_algorithm", "norm") not in ("norm", "value"):
            raise ConfigError(f"{prefix}gradient_clip_algorithm={block.gradient_clip_algorithm} "
                              f"{locate(prefix + 'gradient_clip_algorithm')} must be norm or value")
        check_logger(str(block.get("logger", "csv")), prefix + "logger", locate)


def check_logger(name: str, key: str, locate: _Locator) -> None:
    """A `trainer.logger` this machine can use: a known name, and for `wandb` an importable wandb (found without
    importing it)."""
    import importlib.util

    if name not in LOGGERS:
        close = difflib.get_close_matches(name, LOGGERS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{key}={name} {locate(key)} is not a logger: give one of {', '.join(LOGGERS)}.{hint}")
    if name == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ConfigError(f"{key}=wandb {locate(key)}: wandb is not installed; pip install wandb, or drop "
                          f"{key} (metrics.csv is always written)")


def merge_parts(base: DictConfig, override: DictConfig | dict) -> DictConfig:
    """Merge a stage's overrides onto a block; where the stage picks another `<part>_type`, its `<part>` block
    replaces the inherited one instead of merging into it (the new part has other keys)."""
    merged = OmegaConf.merge(base, override)
    for key, name in override.items():
        if key.endswith("_type") and base.get(key) != name:
            merged[key[: -len("_type")]] = override.get(key[: -len("_type")]) or {}
    return merged


def merge_file(base: DictConfig, override: DictConfig) -> DictConfig:
    """A config file merged over the file it extends, with the stages' rule at every depth: where it picks
    another `<part>_type` than `base` names, beside a `<part>` block, that block replaces the inherited one."""
    merged = OmegaConf.merge(base, override)
    switched = {key[: -len("_type")] for key, value in override.items()
                if key.endswith("_type") and base.get(key) not in (None, value)}
    for key, value in override.items():
        if key in switched:
            merged[key] = value
        elif isinstance(value, DictConfig) and isinstance(base.get(key), DictConfig):
            merged[key] = merge_file(base[key], value)
    for part in switched - set(override):
        if part in base:
            merged[part] = {}
    return merged


def inherit_geometry(system: DictConfig, source: DictConfig, override: DictConfig | dict) -> None:
    """A stage's geometry takes, from the geometry it converts (`source`), the fields both geometries' `Config`s
    inherit from one block (`EncodingConfig`: box, encoding, MLP sizes) that the stage's `override` does not set,
    so the converted weights (the NeRF's albedo branch) are read as they were trained."""
    names = (source.get("geometry_type"), system.get("geometry_type"))
    if not all(isinstance(name, str) and is_registered(name) for name in names):
        return  # check_parts names the unknown part
    old, new = (find(name).Config for name in names)
    shared = {f.name for base in old.__mro__[1:] if dataclasses.is_dataclass(base) and base in new.__mro__
              for f in dataclasses.fields(base)}
    own = override.get("geometry") or {}
    carried = {key: value for key, value in (source.get("geometry") or {}).items() if key in shared and key not in own}
    system.geometry = OmegaConf.merge(system.get("geometry") or {}, carried)


def stage_names(cfg: DictConfig) -> list[str]:
    """The stages in run order (`main` when the config lists none)."""
    return list(cfg.stages) if cfg.stages else ["main"]


def stage_block(cfg: DictConfig, stage_name: str) -> DictConfig:
    """The effective config of one stage: run-level `system`/`trainer` merged with the stage's overrides."""
    if stage_name == "main" and not cfg.stages:
        effective = OmegaConf.masked_copy(cfg, ["system_type", "system", "data_type", "data", "trainer"])
        effective.convert_from = effective.guidance_from = None
    else:
        if stage_name not in cfg.stages:
            raise ConfigError(f"no stage '{stage_name}'; this config has: {', '.join(stage_names(cfg))}")
        stage = cfg.stages[stage_name] or {}
        system = merge_parts(cfg.system, stage.get("system") or {})
        earlier = stage_names(cfg)[: stage_names(cfg).index(stage_name)]
        if stage.get("convert_from") in earlier:
            inherit_geometry(system, stage_block(cfg, stage.convert_from).system, stage.get("system") or {})
        effective = OmegaConf.create(
            {
                "system_type": stage.get("system_type") or cfg.system_type,
                "system": system,
                "data_type": cfg.data_type,
                "data": OmegaConf.merge(cfg.data, stage.get("data") or {}),
                "trainer": OmegaConf.merge(cfg.trainer, stage.get("trainer") or {}),
                "convert_from": stage.get("convert_from"),
                "guidance_from": stage.get("guidance_from"),
            }
        )
    if cfg.get("steps") is not None:
        effective.trainer.max_steps = min(int(effective.trainer.max_steps), int(cfg.steps))
    return effective


def run_tag(cfg: DictConfig) -> str:
    """`tag`, or the prompt with spaces as underscores, or `default`."""
    if cfg.tag:
        return str(cfg.tag)
    prompt = OmegaConf.select(cfg, SHORTHANDS["prompt"], default="") or ""
    slug = re.sub(r"[^\w.,-]+", "_", str(prompt).strip()).strip("_")
    return slug or "default"


def parse_structured(schema: type, block: dict | DictConfig | None) -> Any:
    """`block` as an instance of the dataclass `schema` (threestudio's `parse_structured`): unknown keys and bad
    types fail with the key's name."""
    block = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block or {})
    valid = [f.name for f in dataclasses.fields(schema)]
    for key in block:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown key '{key}' for {schema.__qualname__}.{hint} Valid: {', '.join(valid)}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), block))
    except OmegaConfBaseException as err:
        raise ConfigError(f"bad value for '{err.full_key}' of {schema.__qualname__}: {str(err.msg).splitlines()[0]}") from None


def build(type_name: str, block: dict | DictConfig | None, *args, **kwargs) -> Any:
    """Find the registered class `type_name` and construct it from its parsed `Config` block."""
    cls = find(type_name)
    return cls(parse_structured(cls.Config, block), *args, **kwargs)
