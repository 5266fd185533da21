"""``--checkpoint NAME=DIR`` (repeatable): the classifiers of a run and the names their rows carry.

With one classifier (the default run) rows are named by method alone, exactly as before
several classifiers could be compared; with more, every row is ``NAME/method`` and the CSVs
get a ``checkpoint`` column.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TARGET_CHOICES: tuple[str, ...] = ("any", "subtypes")


@dataclass(frozen=True)
class CheckpointSpec:
    """One ``--checkpoint``: its row name and folder (None: the shipped default classifier)."""

    name: str
    path: Path | None


def _one(text: str | Path, flag: str = "--checkpoint", folder_name: bool = True) -> CheckpointSpec:
    s = str(text).strip()
    if not s:
        raise ConfigError(f"{flag} is empty; give a checkpoint folder, or NAME=DIR")
    name, sep, rest = s.partition("=")
    # NAME=DIR, unless the whole text is an existing folder whose name holds a '='
    if sep and not Path(s).expanduser().exists() and "/" not in name:
        if not _NAME.match(name) or not rest:
            raise ConfigError(f"{flag} {s!r}: write NAME=DIR with NAME made of letters, digits, '.', '_' or '-'")
        return CheckpointSpec(name, Path(rest).expanduser())
    path = Path(s).expanduser()
    if not folder_name:
        return CheckpointSpec("", path)  # named once loaded (a segmenter: after its architecture)
    stem = path.resolve().name if path.exists() else path.name
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip("._-") or "checkpoint"
    return CheckpointSpec(clean, path)


def parse_checkpoints(value: str | Path | Sequence[str | Path] | None) -> list[CheckpointSpec]:
    """The run's classifiers in the order given; ``None`` or ``[]``: the shipped default.
    Two with the same name are a one-line error."""
    if value is None:
        items: list[Any] = []
    elif isinstance(value, (str, Path)):
        items = [value]
    else:
        items = list(value)
    if not items:
        return [CheckpointSpec("default", None)]
    specs = [_one(v) for v in items]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"--checkpoint names {', '.join(dup)} more than once; name each classifier, "
                          "e.g. --checkpoint binary=DIR1 --checkpoint subtypes=DIR2")
    return specs


def parse_segmenters(value: str | Path | Sequence[str | Path] | None) -> list[CheckpointSpec]:
    """The ``--segmenter`` folders in the order given; a spec's name is ``""`` until the
    segmenter is loaded and named after its architecture."""
    items = [] if value is None else [value] if isinstance(value, (str, Path)) else list(value)
    return [_one(v, "--segmenter", folder_name=False) for v in items]


def check_targets(targets: str) -> None:
    if targets not in TARGET_CHOICES:
        raise ConfigError(f"--targets {targets!r} is not a choice; use {' or '.join(TARGET_CHOICES)}")


def row_label(checkpoint: str | None, method: str) -> str:
    """A row's name: ``method`` with one classifier (or for a segmenter), ``NAME/method``
    with several."""
    return f"{checkpoint}/{method}" if checkpoint else method


def split_label(label: str, multi: bool) -> tuple[str, str]:
    """(checkpoint, method) of a row label; a checkpoint name never holds a '/', and a
    segmenter's row (``unet``) has none."""
    if not multi or "/" not in label:
        return "", label
    name, _sep, method = label.partition("/")
    return name, method
