"""What every xaiseg CT data set has in common: per-slice records, lazy items, bad-input policy.

A data set is a ``torch.utils.data.Dataset`` of 2-D axial slices. Its ``records`` (one
:class:`SliceRecord` per item, same order) are known without reading any pixel, so folds can be
made subject-wise and sampling class-balanced before a single volume is opened. ``ds[i]`` reads
the slice lazily and returns a dict (see docs/data.md):

- ``image``: float32 tensor (H, W), Hounsfield units
- ``mask``: uint8 tensor (H, W), 1 = hemorrhage (absent for RSNA, which has no masks)
- ``labels``: float32 tensor (6,), ``LABELS`` order (subtypes + "any"); NaN = not known
- ``subject`` (str), ``slice`` (1-based, as in the label CSV), ``slice_index`` (0-based along
  the volume's slice axis), ``spacing`` ((row_mm, col_mm)), ``source`` (file)
- ``brain``: uint8 tensor (H, W), only if the data set has brain masks
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .constants import LABELS


@dataclass(frozen=True)
class SliceRecord:
    """One slice, known without reading pixels."""

    subject: str
    slice: int  # 1-based slice number, as in the label CSV
    slice_index: int  # 0-based index along the volume's slice axis
    labels: tuple[float, ...]  # len(LABELS), LABELS order; NaN = not known
    source: str  # the image file

    @property
    def any(self) -> bool:
        return bool(self.labels[-1] > 0.5)


class BadInput:
    """Collects problems with the input: raise at once, or (``skip_bad``) count and report."""

    def __init__(self, skip_bad: bool, what: str):
        self.skip_bad, self.what = skip_bad, what
        self.messages: list[str] = []

    def __call__(self, message: str) -> None:
        if not self.skip_bad:
            raise DataError(message)
        self.messages.append(message)

    def report(self) -> None:
        if self.messages:
            warnings.warn(
                f"{self.what}: skipped {len(self.messages)} bad item(s); first: {self.messages[0]}",
                RuntimeWarning,
                stacklevel=3,
            )


class LabelRows:
    """Label rows of a CSV collected per key (subject or image), each row in its slot.

    ``add(key, parse)`` calls ``parse(seen)`` with the key's rows so far; it returns
    ``(slot, value)`` or raises DataError (a malformed cell, a duplicate). A bad row goes to
    ``bad`` — an error at once, or with ``skip_bad`` a count — and drops every row of its key:
    half a subject's labels would mislead.
    """

    def __init__(self, bad: BadInput) -> None:
        self.bad = bad
        self.rows: dict[Hashable, dict[Hashable, Any]] = {}
        self.dropped: set[Hashable] = set()

    def add(self, key: Hashable, parse: Callable[[dict[Hashable, Any]], tuple[Hashable, Any]]) -> None:
        try:
            slot, value = parse(self.rows.get(key, {}))
        except DataError as exc:
            self.bad(str(exc))
            self.dropped.add(key)
            return
        self.rows.setdefault(key, {})[slot] = value

    def result(self) -> dict[Hashable, dict[Hashable, Any]]:
        """The rows of every key that had no bad row."""
        return {k: v for k, v in self.rows.items() if k not in self.dropped}


def skipped_summary(skipped: Sequence[str]) -> str:
    """The one line a command prints (or logs) for what ``skip_bad`` left out of a data set."""
    return f"--skip-bad: skipped {len(skipped)} bad item(s) of the data set; first: {skipped[0]}"


@contextmanager
def quiet_skip_warnings() -> Iterator[None]:
    """Silence :meth:`BadInput.report`'s warning, for callers that say :func:`skipped_summary`
    themselves (the same news twice is noise)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*skipped \d+ bad item", category=RuntimeWarning)
        yield


class LRUCache:
    """At most ``maxsize`` loaded volumes, least recently used dropped first.

    Memory stays bounded whatever the number of subjects (each DataLoader worker holds its own).
    """

    def __init__(self, maxsize: int = 4):
        self.maxsize = max(1, int(maxsize))
        self._d: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()  # the benchmark's loader threads share one data set

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = load()  # outside the lock: two threads may both decode a volume, never block each other
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return value

    def __getstate__(self) -> dict:
        return {"maxsize": self.maxsize}  # a copy for another process starts empty (a lock cannot be pickled)

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["maxsize"])

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        self._d.clear()


def label_vector(values: dict[str, float]) -> tuple[float, ...]:
    """A LABELS-ordered tuple from a {label: value} dict; missing labels are NaN (unknown)."""
    return tuple(float(values.get(name, float("nan"))) for name in LABELS)


def check_finite(arr: np.ndarray, where: str) -> None:
    if not np.isfinite(arr).all():
        n = int((~np.isfinite(arr)).sum())
        raise DataError(f"{where}: {n} NaN/Inf voxel(s)")


def check_spacing(spacing: Any, where: str) -> tuple[float, float]:
    """(row_mm, col_mm), both finite and > 0; anything else is a DataError (never a silent 1 mm)."""
    try:
        sp = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        sp = ()
    if len(sp) != 2 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise DataError(f"{where}: pixel spacing is {spacing!r}; it must be two finite sizes > 0 mm (row, column)")
    return sp  # type: ignore[return-value]


def check_item(item: Any, where: str) -> None:
    """What the benchmark and training need of an item of *any* data set (one passed in, not
    only ours): a finite 2-D image, a valid spacing, masks of the image's shape. Raises
    DataError naming ``where`` -- bad input as the file loaders report it."""
    if not isinstance(item, dict) or "image" not in item:
        raise DataError(f"{where}: an item must be a dict with an 'image' (see docs/data.md)")
    image = np.asarray(item["image"])
    if image.ndim != 2 or min(image.shape) == 0:
        raise DataError(f"{where}: image of shape {image.shape}; expected one 2-D slice (H, W)")
    if image.dtype.kind not in "biuf":
        raise DataError(f"{where}: image of dtype {image.dtype}; expected numbers (HU)")
    check_finite(image, where)
    check_spacing(item.get("spacing"), where)
    for key in ("mask", "brain"):
        if item.get(key) is not None:
            m = np.asarray(item[key])
            if m.shape != image.shape:
                raise DataError(f"{where}: {key} of shape {m.shape} differs from the image's {image.shape}")
            if m.dtype.kind == "f":
                check_finite(m, f"{where} ({key})")


class CTSliceDataset(Dataset):
    """Base class: ``records`` plus lazy ``__getitem__``; subclasses implement ``_load(record)``."""

    layout = "?"
    has_masks = True

    def __init__(self) -> None:
        self.records: list[SliceRecord] = []
        self.skipped: list[str] = []  # one message per skipped bad item (skip_bad=True)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self.records) <= index < len(self.records):
            raise IndexError(f"slice index {index} out of range for a data set of {len(self.records)} slices")
        rec = self.records[index]
        item = self._load(rec)
        item.update(
            subject=rec.subject,
            slice=rec.slice,
            slice_index=rec.slice_index,
            source=rec.source,
            labels=torch.tensor(rec.labels, dtype=torch.float32),
        )
        return item

    def truth_files(self, subject: str) -> tuple[Path, ...]:
        """The files holding ``subject``'s ground truth (hemorrhage mask, brain mask), so a run
        can tell when they change; empty for layouts without masks (RSNA)."""
        files = getattr(self, "_files", {}).get(subject)  # (image, mask, brain) in our NIfTI loaders
        return tuple(Path(f) for f in (files[1:] if files else ()) if f is not None)

    def _load(self, rec: SliceRecord) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers (spawn) get the records, not the parent's cached volumes
        state = self.__dict__.copy()
        cache = state.get("_cache")
        if isinstance(cache, LRUCache):
            state["_cache"] = LRUCache(cache.maxsize)
        return state

    @property
    def subjects(self) -> list[str]:
        """Subject ids in first-appearance order."""
        return list(dict.fromkeys(r.subject for r in self.records))

    def __repr__(self) -> str:
        n_pos = sum(r.any for r in self.records)
        return (
            f"{type(self).__name__}({len(self.records)} slices, {len(self.subjects)} subjects, "
            f"{n_pos} hemorrhage-positive, {len(self.skipped)} skipped)"
        )
