"""The benchmark's on-disk journal: ``slices.csv`` appended one (method, batch) at a time,
next to a cache of that batch's maps, so an interrupted run resumes where it stopped.

Invariants that make a resumed run equal an uninterrupted one:

* the slices and their batches are fixed by the config (checked on resume), so every method
  sees the same batch composition whether or not the run was interrupted;
* a (method, batch) unit is *done* only when its cache file exists and all its rows are in the
  CSV; on resume anything less is discarded and recomputed (the cache file is written first,
  atomically, then the rows in one write, flushed and fsynced);
* floats are written with ``repr`` (shortest exact round trip), and the final numbers are always
  computed from what was read back from disk, never from in-memory copies.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..output.atomic import atomic_path, save_npz
from .checkpoints import row_label, split_label

SLICES_CSV = "slices.csv"
CACHE_DIR = "cache"


def fmt(value: Any) -> str:
    """One CSV cell; floats round-trip exactly."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def safe_name(method: str) -> str:
    """A file-name-safe, collision-free stem for a method name: the name itself when it is
    already safe (``hgi-sam``), else a cleaned name plus a short hash (``captum_Saliency-1a2b3c4d``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", method)
    if stem == method and not re.search(r"-[0-9a-f]{8}$", method):
        return stem
    return f"{stem}-{zlib.crc32(method.encode()):08x}"


class RunStore:
    """Rows of ``slices.csv`` plus the per-(method, batch) map cache of one output folder."""

    def __init__(self, out: Path, columns: list[str], batch_of: dict[int, int]) -> None:
        self.out = Path(out)
        self.columns = columns
        self.batch_of = batch_of  # slice id → batch index, fixed by the config
        self.csv_path = self.out / SLICES_CSV
        self.cache = self.out / CACHE_DIR
        # several classifiers: a row's label NAME/method is written as a checkpoint and a method cell
        self.multi = "checkpoint" in columns

    def _on_disk(self, rows: list[dict]) -> list[dict]:
        if not self.multi:
            return rows
        return [r | dict(zip(("checkpoint", "method"), split_label(r["method"], True))) for r in rows]

    # -- writing ---------------------------------------------------------------------------
    def start(self) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        if not self.csv_path.exists():
            self._write_all([])

    def cache_file(self, method: str, batch: int) -> Path:
        return self.cache / safe_name(method) / f"batch-{batch:06d}.npz"

    def write_unit(self, method: str, batch: int, arrays: dict[str, np.ndarray], rows: list[dict]) -> None:
        path = self.cache_file(method, batch)
        save_npz(path, **arrays)
        buf = io.StringIO()
        csv.DictWriter(buf, self.columns, lineterminator="\n").writerows(
            [{k: fmt(r.get(k)) for k in self.columns} for r in self._on_disk(rows)])
        with open(self.csv_path, "a", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())

    # The brain masks the maps pass used, so the scores pass need not compute them again (the
    # automatic mask is a third of a 512² run). "@" never occurs in a safe_name: no method's folder.
    BRAIN_DIR = "brain@"

    def brain_file(self, batch: int) -> Path:
        return self.cache / self.BRAIN_DIR / f"batch-{batch:06d}.npz"

    def write_brains(self, batch: int, masks: Sequence[np.ndarray | None]) -> None:
        """Bit-packed brain masks of one batch's slices (None: brain masking is off)."""
        if all(m is None for m in masks):
            return
        arrays: dict[str, np.ndarray] = {}
        for i, m in enumerate(masks):
            arrays[f"bits{i}"], arrays[f"shape{i}"] = np.packbits(np.asarray(m, bool)), np.asarray(np.shape(m))
        save_npz(self.brain_file(batch), **arrays)

    def load_brains(self, batch: int, n: int) -> list[np.ndarray] | None:
        """The batch's brain masks as the maps pass stored them, or None if it stored none (an
        older run, or brain masking off)."""
        path = self.brain_file(batch)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                return [np.unpackbits(z[f"bits{i}"], count=int(np.prod(z[f"shape{i}"]))).reshape(tuple(z[f"shape{i}"]))
                        .astype(bool) for i in range(n)]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: compute the masks again
            return None

    def load_unit(self, method: str, batch: int, key: str) -> np.ndarray:
        """One array (``maps`` or ``curves``) of a cached unit."""
        with np.load(self.cache_file(method, batch)) as z:
            return z[key]

    # -- reading / resuming ----------------------------------------------------------------
    def read_rows(self) -> list[dict[str, str]]:
        if not self.csv_path.exists():
            return []
        # bytes a crash or a bad disk left behind are dropped with their rows, never decoded as data
        text = self.csv_path.read_bytes().decode("utf-8", errors="replace")
        if text and not text.endswith("\n"):  # a write cut short by a crash
            text = text[: text.rfind("\n") + 1]
        lines = [ln for ln in text.splitlines(keepends=True) if "\ufffd" not in ln and "\x00" not in ln]
        rows = list(csv.DictReader(io.StringIO("".join(lines))))
        rows = [r for r in rows if None not in r and all(v is not None for v in r.values())]
        if self.multi:  # back to the row labels the stages use
            for r in rows:
                r["method"] = row_label(r.get("checkpoint"), r["method"])
        return rows

    def _readable(self, method: str, batch: int) -> bool:
        """A cached unit that opens with both arrays; a truncated or garbled one is recomputed."""
        try:
            with np.load(self.cache_file(method, batch)) as z:
                return "maps" in z.files
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return False

    def recover(self, methods: Iterable[str], slice_ids: list[int]) -> set[tuple[str, int]]:
        """Keep only complete (method, batch) units, rewrite the CSV with exactly their rows and
        return them; everything else will be recomputed."""
        expected: dict[int, set[int]] = {}
        for sid in slice_ids:
            expected.setdefault(self.batch_of[sid], set()).add(sid)
        methods = set(methods)
        seen: dict[tuple[str, int], dict[int, dict]] = {}
        for r in self.read_rows():
            try:
                m, sid = r["method"], int(r["slice_id"])
            except (KeyError, ValueError):
                continue
            if m in methods and sid in self.batch_of:
                seen.setdefault((m, self.batch_of[sid]), {})[sid] = r
        done = {
            unit for unit, rows in seen.items()
            if set(rows) == expected.get(unit[1], set()) and self._readable(*unit)
        }
        keep = [r for unit in sorted(done) for _, r in sorted(seen[unit].items())]
        self._write_all(keep)
        return done

    def _write_all(self, rows: list[dict]) -> None:
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, self.columns, lineterminator="\n")
            w.writeheader()
            w.writerows([{k: fmt(r.get(k)) if not isinstance(r.get(k), str) else r[k] for k in self.columns}
                         for r in self._on_disk(rows)])
            fh.flush()
            os.fsync(fh.fileno())

    def rewrite(self, rows: list[dict]) -> None:
        """Replace the CSV atomically (the final pass fills the threshold-dependent columns)."""
        self._write_all(rows)
