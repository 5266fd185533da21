"""Whether a run trains on the fresh phantom stream: ``--data phantom``, or a folder written by
``xaiseg phantom`` with the generator this xaiseg has (``--train-on auto``, the default).

Why: a written phantom is a small, fixed sample of a generator we can run. Trained on its 500 or
so slices, the ``tiny`` Swin stops near chance (docs/training.md); trained on fresh slices of the
same generator with the lesion-size curriculum, it learns. The folder's slices then serve as the
validation set (none of them is trained on).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TRAIN_SOURCES = ("auto", "stream", "disk")


def phantom_folder_meta(data: str) -> dict[str, Any] | None:
    """phantom.json of a folder written by ``xaiseg phantom``, or None."""
    path = Path(data) / "phantom.json"
    if data == "phantom" or not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == "xaiseg phantom" else None


def stream_matches(meta: dict[str, Any]) -> bool:
    """True if this xaiseg's generator wrote the folder (same version): the stream looks like it."""
    from ..data.phantom import PHANTOM_VERSION

    return meta.get("version") == PHANTOM_VERSION
