"""Checks an output path before any work starts, so a bad ``--out`` fails in one line, at once,
with nothing written (instead of an ``OSError`` traceback after minutes of computing)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` must be a folder or not exist yet, below a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {str(p)!r} is a file; give a folder (it is created if missing)")
    _check_parent(p, option)
    return p


def check_out_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` must name a file (not a folder) in a folder that exists or can be created."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {str(p)!r} is a folder; give a file name")
    _check_parent(p.parent, option, target=p)
    return p


def _check_parent(p: Path, option: str, target: Path | None = None) -> None:
    target = p if target is None else target
    anc = p if p.exists() else next((a for a in p.parents if a.exists()), Path("."))
    if not anc.is_dir():
        raise ConfigError(f"{option} {str(target)!r} lies inside {str(anc)!r}, which is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(target)!r}: no permission to write in {str(anc)!r}")


def _same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are one file: equal real paths (links followed) or one inode (hard links)."""
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], option: str = "--out") -> None:
    """``out`` must not be any of ``inputs``, a link to one or a hard link of one: writing it
    would destroy the input."""
    o = Path(out)
    for inp in inputs:
        if inp is None:
            continue
        i = Path(inp)
        if _same_file(o, i):
            raise ConfigError(f"{option} {str(o)!r} is the input {str(i)!r}; writing it would destroy the input, "
                              "choose another output path")


def check_new_file(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False,
                   option: str = "--out") -> Path:
    """An output file: not an input, in a writable folder, and replaced only with ``overwrite``
    (and then only a regular file: never a folder, a device or a FIFO)."""
    p = check_out_file(out, option)
    check_not_input(p, inputs, option)
    if p.exists() or p.is_symlink():
        if not overwrite:
            raise ConfigError(f"{option} {str(p)!r} already exists; pass --overwrite to replace it, or choose another path")
        if p.exists() and not p.is_file():
            raise ConfigError(f"{option} {str(p)!r} exists and is not a regular file; choose another path")
    return p
