"""Checks an output path before any work starts, so a bad ``--out`` fails in one line, at once,
with nothing written (instead of an ``OSError`` traceback after minutes of computing)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


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
