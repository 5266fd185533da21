"""Progress bars: shown on a terminal when asked for, quiet when the output is a pipe or a file
(a log then holds the results, not thousands of carriage-return updates)."""
from __future__ import annotations

from typing import Any, Iterable

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm`` that draws only when ``enabled`` and its stream is a terminal (tqdm's ``disable=None``)."""
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
