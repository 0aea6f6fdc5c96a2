"""Files a run writes and files a user may be handed: atomic writes, and loads that never run code.

Every file that matters (checkpoints, caches, `config.yaml`, `done`, exports) is written to a temporary file in
its own folder, flushed to disk and renamed over the old one, so a crash, a kill or a full disk leaves either the
old file or the new one, never half of one. Every torch file is read with `weights_only=True`: a pickle that asks
to import or call anything (`os.system`, …) is refused, and a truncated or random file is named in a one-line
`UnreadableFile` (a `ConfigError`: launch.py exits 2 with it).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from ui3d.config import ConfigError


_UMASK = os.umask(0o022)
os.umask(_UMASK)


DAMAGED = "truncated, corrupt or not a torch file"


class UnreadableFile(ConfigError):
    """A file that cannot be loaded safely: corrupt, truncated, not a torch file, or asking to run code."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error, the file written there is synced
    and renamed onto `path` (the folder is synced too). On error the temporary file is removed and `path` is
    untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name keeps the extension, for writers that pick the format by it (imageio, trimesh)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600: give the file the mode a plain open() would
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """`path.write_text(text)`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj, path)`, atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def torch_load(path: str | os.PathLike, what: str = "file", map_location: Any = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`; a file that is not a clean torch file of tensors and plain containers
    raises `UnreadableFile` naming it and saying why (asks to run code, truncated, not a torch file)."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [s.strip() for s in str(err).strip().splitlines()]
        unsafe = next((s for s in lines if "GLOBAL" in s), None)
        if unsafe:
            reason = f"it asks to import and call Python code ({unsafe.rstrip('.')[:160]}); refused"
        else:
            reason = f"{DAMAGED} ({next((s for s in lines if 'Unsupported' in s), lines[0])[:120]})"
        raise UnreadableFile(f"{what} {path} cannot be loaded: {reason}") from None
    except Exception as err:  # noqa: BLE001 - any other failure of the restricted unpickler on foreign bytes
        # (IndexError, TypeError, struct.error, UnicodeDecodeError, ... from random data) means a damaged file
        message = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableFile(f"{what} {path} cannot be loaded: {DAMAGED} ({message[:120]})") from None


def load_cache(path: str | os.PathLike, what: str = "cache file") -> Any | None:
    """A cache file's contents, or None when it is absent or unreadable; an unreadable one (truncated, foreign) is
    removed with a warning naming it, so the caller recomputes and rewrites it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch_load(path, what)
    except UnreadableFile as err:
        print(f"warning: {err}; removed, it will be recomputed", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; when the block ends without error it replaces `path` as a whole
    (a reader sees the old folder or the new one, never a mix). On error it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    _sync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale(folder: str | os.PathLike) -> None:
    """Remove what interrupted atomic writes left in `folder` (`.<name>.*.tmp*` files and folders, `.old`s)."""
    for stale in [*Path(folder).glob(".*.tmp*"), *Path(folder).glob(".*.old")]:
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
