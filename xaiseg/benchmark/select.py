"""Stage 1, *select slices*: which slices are scored, in which fixed batches, in which
subject-wise fold. Everything later (and a resumed run) sees exactly this selection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..thresholds import ThresholdStrategy
from .config import check_negative_ratio
from .folds import subject_folds


@dataclass(frozen=True)
class Selection:
    """The scored slices (ids into the data set's records), cut into batches, and the fold of
    each slice's subject (``k`` folds)."""

    slice_ids: list[int]
    batches: list[list[int]]
    subject_of: dict[int, str]
    fold_of_subject: dict[str, int]
    k: int

    @property
    def batch_of(self) -> dict[int, int]:
        return {sid: b for b, ids in enumerate(self.batches) for sid in ids}

    def fold(self, sid: int) -> int:
        return self.fold_of_subject[self.subject_of[sid]]

    def shard(self, rank: int, size: int) -> "Selection":
        """The part of the selection that process ``rank`` of ``size`` computes: the batches
        ``b`` with ``b % size == rank``. The other batches are left empty (the passes skip them)
        rather than dropped, so every batch keeps its index, hence its seed, its cache file and
        its ``batch`` column, and its composition: each unit is the single-process run's."""
        batches = [ids if b % size == rank else [] for b, ids in enumerate(self.batches)]
        return Selection([sid for ids in batches for sid in ids], batches, self.subject_of, self.fold_of_subject, self.k)


def record_field(r: Any, key: str) -> Any:
    return r[key] if isinstance(r, dict) else getattr(r, key)


def labels_of(r: Any) -> np.ndarray:
    return np.asarray(record_field(r, "labels"), dtype=np.float32).reshape(-1)


def is_positive(r: Any) -> bool:
    """The slice's ``any`` label is 1 (an unknown, NaN label is not)."""
    return bool(labels_of(r)[-1] > 0.5)


def spread(ids: list[int], n: int) -> list[int]:
    """``n`` of ``ids`` evenly spread (so every subject keeps some)."""
    if n >= len(ids):
        return list(ids)
    if n <= 0:
        return []
    return [ids[i] for i in np.unique(np.round(np.linspace(0, len(ids) - 1, n)).astype(int))]


def select_ids(records: Sequence[Any], positives_only: bool, limit: int | None,
               negative_ratio: float | None = None) -> list[int]:
    """The ids of the slices to score: all, or only positives, or the positives with at most
    ``negative_ratio`` negatives each; then at most ``limit``, spread evenly."""
    ids = [i for i, r in enumerate(records) if not positives_only or is_positive(r)]
    check_negative_ratio(negative_ratio)
    if negative_ratio is not None and not positives_only:
        pos = [i for i in ids if is_positive(records[i])]
        neg = [i for i in ids if not is_positive(records[i])]
        ids = sorted(pos + spread(neg, int(round(negative_ratio * len(pos)))))
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {limit}")
        ids = spread(ids, limit)  # evenly over the data set: every subject (and fold) keeps some
    if not ids:
        raise DataError("no slices to score" + (" (no hemorrhage-positive slice)" if positives_only else ""))
    return ids


def select_slices(records: Sequence[Any], *, positives_only: bool, limit: int | None, negative_ratio: float | None,
                  batch_size: int, folds: int, seed: int, strategy: ThresholdStrategy) -> Selection:
    """The selection of a run. Folds are dealt once, here: a calibrated strategy needs ``folds``
    of them (an error if the data cannot give them); for the others they are recorded only, so
    rows look alike (at least 2, or all in fold 0 when the data has too few positive subjects)."""
    slice_ids = select_ids(records, positives_only, limit, negative_ratio)
    batches = [slice_ids[i : i + batch_size] for i in range(0, len(slice_ids), batch_size)]
    subject_of = {sid: str(record_field(records[sid], "subject")) for sid in slice_ids}
    positive_subjects = {subject_of[sid] for sid in slice_ids if is_positive(records[sid])}
    k = folds if strategy.calibrated else max(2, folds)
    try:
        fold_of_subject = subject_folds(subject_of.values(), positive_subjects, k, seed)
    except ConfigError:
        if strategy.calibrated:
            raise
        fold_of_subject = {s: 0 for s in subject_of.values()}
    return Selection(slice_ids, batches, subject_of, fold_of_subject, k)
