"""Which folders a command may write into, and taking one for a run.

A command writes only into a folder that is new, empty, or provably its own: it holds the
marker ``.xaiseg.json`` (``{"written_by": "xaiseg train", ...}``) that the command wrote when it
first took the folder, or a record an older xaiseg wrote (``Owner.records``, e.g. a checkpoint's
``config.json``). Anything else -- a folder of the user's files, another command's output -- is
refused before any work, in one line, with nothing changed. While a command runs the folder is
locked (:mod:`xaiseg.output.lock`); a run that fails before writing anything leaves the folder as it
found it (a folder it created is removed again).
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .atomic import write_json
from ..errors import ConfigError
from .lock import LOCK_FILE, folder_lock
from .paths import check_out_dir

MARKER = ".xaiseg.json"
# bookkeeping of ours that does not make a folder "not empty"
_OURS = (MARKER, LOCK_FILE)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def json_record(name: str, key: str, value: Any) -> tuple[str, Callable[[Any], bool]]:
    """A record file ``name`` holding a JSON object with ``key == value``."""
    return name, lambda obj: isinstance(obj, dict) and obj.get(key) == value


@dataclass(frozen=True)
class Owner:
    """A command that writes output folders, and the records that prove a folder is its own."""

    command: str  # as the user types it, e.g. "xaiseg train"
    records: tuple[tuple[str, Callable[[Any], bool]], ...] = ()  # written by earlier versions

    def owns(self, folder: Path) -> bool:
        mark = _read_json(folder / MARKER)
        if isinstance(mark, dict) and mark.get("written_by") == self.command:
            return True
        return any(ok(_read_json(folder / name)) for name, ok in self.records)


def written_by(folder: str | os.PathLike) -> str | None:
    """The command whose marker ``folder`` holds, if any."""
    mark = _read_json(Path(folder) / MARKER)
    return str(mark.get("written_by")) if isinstance(mark, dict) and mark.get("written_by") else None


def foreign_entries(folder: Path) -> list[str]:
    """The names in ``folder`` other than our own bookkeeping files."""
    return sorted(e.name for e in folder.iterdir() if e.name not in _OURS)


def check_output_folder(path: str | os.PathLike, owner: Owner, option: str = "--out") -> Path:
    """``path`` must be new, empty or ``owner``'s own (see the module docstring)."""
    p = check_out_dir(path, option)
    if not p.is_dir():
        return p
    names = foreign_entries(p)
    if not names or owner.owns(p):
        return p
    other = written_by(p)
    if other is not None:
        raise ConfigError(f"{option} {str(p)!r} holds the output of `{other}`, not of `{owner.command}`; "
                          "choose an empty or new folder")
    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
    raise ConfigError(f"{option} {str(p)!r} is not empty and was not written by `{owner.command}` (it holds "
                      f"{names[0]!r}{more}); choose an empty or new folder")


def unexpected_files(folder: str | os.PathLike, patterns: Iterable[str]) -> list[str]:
    """Paths under ``folder`` (relative, ``/``-separated; folders end in ``/``) that match none of
    the glob ``patterns``: what a command that wrote ``patterns`` must not delete. A folder is
    expected when a pattern lies below it; links are entries, never followed."""
    root = Path(folder)
    pats = [p.rstrip("/") for p in patterns] + list(_OURS)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root).as_posix()
        for name in sorted(filenames + dirnames):
            rel = name if here == "." else f"{here}/{name}"
            is_dir = name in dirnames and not os.path.islink(os.path.join(dirpath, name))
            if any(fnmatch.fnmatchcase(rel, p) for p in pats):
                continue
            if is_dir and any(p.startswith(rel + "/") for p in pats):
                continue  # descend into it
            out.append(rel + "/" if is_dir else rel)
            if name in dirnames:
                dirnames.remove(name)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return sorted(out)


def _make_dirs(p: Path) -> list[Path]:
    """``mkdir -p``; returns the folders it created, outermost first."""
    missing = [d for d in [p, *p.parents] if not d.exists()][::-1]
    for d in missing:
        d.mkdir(exist_ok=True)
    return missing


@contextmanager
def output_folder(path: str | os.PathLike, owner: Owner, option: str = "--out") -> Iterator[Path]:
    """Check, create, lock and mark ``path`` as ``owner``'s for the ``with`` block.

    On an error inside the block, a folder left holding nothing but the marker is restored to
    how it was found (marker removed; removed altogether if this call created it).
    """
    p = check_output_folder(path, owner, option)
    created = _make_dirs(p)
    try:
        with folder_lock(p, option):
            check_output_folder(p, owner, option)  # again: another command may have filled it meanwhile
            marked = not (p / MARKER).exists()
            if marked:
                from .._version import __version__

                write_json(p / MARKER, {"written_by": owner.command, "xaiseg_version": __version__,
                                        "created": _dt.datetime.now().isoformat(timespec="seconds")})
            try:
                yield p
            except BaseException:
                if marked and not foreign_entries(p):
                    (p / MARKER).unlink(missing_ok=True)
                raise
    except BaseException:
        for d in reversed(created):
            try:
                d.rmdir()  # only if empty: never anything a user put there meanwhile
            except OSError:
                break
        raise
