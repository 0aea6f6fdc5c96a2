"""One registry for every configurable part, keyed by kebab-case name (threestudio's `register`/`find`).

Modules register on import; `find` imports the whole package once on a miss, so a name is found wherever its
module lives, and an unknown name fails with the closest registered names.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, TypeVar

T = TypeVar("T")
_REGISTRY: dict[str, type] = {}
_loaded_all = False

ALIASES = {
    "stable-diffusion-guidance": "sds",
    "stable-diffusion-vsd-guidance": "vsd",
    "stable-diffusion-prompt-processor": "prompt-processor",
    "dreamfusion-system": "text-to-3d-system",
    "prolificdreamer-system": "text-to-3d-system",
    "nvdiff-rasterizer": "mesh-rasterizer",
}
"""threestudio's registered names for the parts ui3d has under another name: a threestudio config's `*_type`
finds ours (their blocks are still checked against our `Config`s, whose keys differ where README says)."""


class RegistryError(KeyError):
    """An unknown or duplicate registered name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make `cls` findable as `name` (kebab-case, unique)."""

    def decorator(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise RegistryError(f"'{name}' is registered twice: {_REGISTRY[name]} and {cls}")
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return decorator


def _import_package() -> None:
    """Import every module of `ui3d` so that all `@register` decorators have run."""
    global _loaded_all
    if _loaded_all:
        return
    _loaded_all = True
    import ui3d

    for module in pkgutil.walk_packages(ui3d.__path__, "ui3d."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)


def find(name: str) -> type:
    """The class registered as `name` (or as the name threestudio's alias stands for); a miss names the closest
    registered names."""
    name = ALIASES.get(name, name)
    if name not in _REGISTRY:
        _import_package()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(_REGISTRY)) or "(none yet)"
        raise RegistryError(f"nothing is registered as '{name}'.{hint} Registered: {known}")
    return _REGISTRY[name]


def is_registered(name: str) -> bool:
    """Whether `name` (or the name threestudio's alias stands for) is registered (importing the whole package
    first)."""
    name = ALIASES.get(name, name)
    if name not in _REGISTRY:
        _import_package()
    return name in _REGISTRY


def names() -> list[str]:
    """Every registered name, sorted."""
    _import_package()
    return sorted(_REGISTRY)
