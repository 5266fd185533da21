"""Subject-wise folds of a segmenter and the guard that keeps its training subjects out of
its scores.

A segmenter trained with ``--folds K`` is K models; model k never saw the subjects of fold k
(neither for gradients nor for choosing its best epoch). Each model's checkpoint lists the
subjects it saw, so whoever scores a subject can check, subject by subject, that the map comes
from a model that never saw it — also when the data being scored is not the data the folds
were made from (same subject ids, other folds: the guard still goes by the ids).
"""
from __future__ import annotations

from typing import Iterable, Protocol, Sequence

from ..benchmark.folds import subject_folds
from ..errors import DataError


class LeakageError(DataError):
    """A subject would be scored by a model that trained on it."""


class FoldModel(Protocol):
    label: str  # e.g. "runs/unet/fold-2"
    seen: frozenset[str]  # subjects in its training or validation split


def plan_folds(subjects: Iterable[str], positive_subjects: Iterable[str], k: int, seed: int) -> list[list[str]]:
    """The held-out subjects of each of ``k`` folds (sorted), positive subjects spread evenly
    (the benchmark's own subject-wise dealing, :func:`xaiseg.benchmark.folds.subject_folds`)."""
    subjects, positive = sorted(set(map(str, subjects))), set(map(str, positive_subjects))
    n_pos = sum(s in positive for s in subjects)
    if n_pos < k:
        raise DataError(f"--folds {k} needs at least {k} subjects with hemorrhage, the data has {n_pos}; lower --folds")
    fold_of = subject_folds(subjects, positive, k, seed)
    return [sorted(s for s, f in fold_of.items() if f == i) for i in range(k)]


def check_disjoint(folds: Sequence[Sequence[str]]) -> None:
    """Every subject in at most one fold (a checkpoint whose folds overlap is corrupt)."""
    owner: dict[str, int] = {}
    for i, fold in enumerate(folds):
        for s in fold:
            if s in owner:
                raise DataError(f"subject {s!r} is in folds {owner[s]} and {i}; the segmenter's folds are corrupt")
            owner[s] = i


def unseen_models(models: Sequence[FoldModel], subject: str) -> list[int]:
    """Indices of the models that may score ``subject``: those that never saw it. Raises
    :class:`LeakageError` (one line naming the subject and the models) when every model saw it."""
    s = str(subject)
    ok = [i for i, m in enumerate(models) if s not in m.seen]
    if not ok:
        names = ", ".join(m.label for m in models)
        raise LeakageError(
            f"subject {s!r} was in the training data of every model of the segmenter ({names}); scoring it "
            "would leak: score data the segmenter never saw, or train it with --folds on this data"
        )
    return ok
