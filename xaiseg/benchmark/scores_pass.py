"""Stages 3 and 4: *thresholds* from the cached Dice curves (calibrated per subject-wise fold,
or none for per-map strategies), then the *scores pass*: the thresholded scores of every
cached map, which complete slices.csv.

Thresholds come before the thresholded scores because a calibrated threshold is chosen on
the curves of *other* folds; both read only the store, never the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ..progress import progress_bar

from ..errors import DataError
from ..metrics import Metric
from ..thresholds import ThresholdStrategy
from .evaluate import EvaluationGrid, thresholded_scores
from .inputs import SliceLoader
from .prefetch import prefetched
from .select import Selection
from .store import RunStore
from .timing import StageClock

FoldThresholds = dict[str, list[dict]]  # method → one {"fold", "threshold", ...} per fold ([] per map)


@dataclass
class Curves:
    """The Dice-vs-threshold curves of each method's positive slices and their folds."""

    by_method: dict[str, list[np.ndarray]]
    folds: dict[str, list[int]]

    def mean(self) -> dict[str, np.ndarray]:
        return {m: np.stack(c).mean(axis=0) for m, c in self.by_method.items() if c}


@dataclass
class ScoresPassResult:
    """What the scores pass leaves for the report besides slices.csv: the montage's slices
    per method, and the NIfTI maps written (None without --save-maps)."""

    montage: dict[str, list] = field(default_factory=dict)
    maps: Path | None = None


def read_rows(store: RunStore, methods: Sequence[str], slice_ids: Sequence[int]) -> dict[tuple[str, int], dict]:
    """The maps pass's rows by (method, slice id); every one must be there."""
    by_key = {(r["method"], int(r["slice_id"])): r for r in store.read_rows()}
    missing = [(m, s) for m in methods for s in slice_ids if (m, s) not in by_key]
    if missing:
        raise RuntimeError(f"{len(missing)} (method, slice) rows are missing after the maps pass")
    return by_key


def collect_curves(store: RunStore, selection: Selection, methods: Sequence[str], by_key: dict) -> Curves:
    curves = Curves({m: [] for m in methods}, {m: [] for m in methods})
    for m in methods:
        for b, ids in enumerate(selection.batches):
            c = store.load_unit(m, b, "curves")
            for j, sid in enumerate(ids):
                r = by_key[(m, sid)]
                if r["role"] == "positive":
                    curves.by_method[m].append(c[j])
                    curves.folds[m].append(int(r["fold"]))
    return curves


def calibrate_thresholds(strategy: ThresholdStrategy, curves: Curves, k: int) -> FoldThresholds:
    """Per method, the strategy's per-fold thresholds (nothing for a per-map strategy)."""
    if not strategy.calibrated:
        return {}
    out: FoldThresholds = {}
    for m, c in curves.by_method.items():
        if not c:
            raise DataError(f"{strategy.name} thresholds need hemorrhage-positive slices with masks; the selection has none")
        out[m] = strategy.calibrate(np.stack(c), np.array(curves.folds[m]), k)
    return out


def sample_positive(by_key: dict, method: str, slice_ids: list[int], n: int) -> set[int]:
    """``n`` positive slices evenly spread, for the overlay montage."""
    pos = [s for s in slice_ids if by_key[(method, s)]["role"] == "positive"]
    if not pos or n <= 0:
        return set()
    pick = np.unique(np.round(np.linspace(0, len(pos) - 1, min(n, len(pos)))).astype(int))
    return {pos[i] for i in pick}


def _truth_loader(store: RunStore, slices: SliceLoader, selection: Selection, workers: int):
    """A batch as scoring needs it: each slice's mask and spacing read again, its brain mask from
    the maps pass's cache (computed again only where the cache has none), no model input."""
    loader = slices.for_threads(workers)

    def load_batch(b: int) -> list:
        ids = selection.batches[b]
        brains = store.load_brains(b, len(ids))
        return [loader.load(sid, None if brains is None else brains[j], model_input=False) for j, sid in enumerate(ids)]

    return load_batch


def scores_pass(store: RunStore, slices: SliceLoader, selection: Selection, methods: Sequence[str], by_key: dict,
                strategy: ThresholdStrategy, thresholds: FoldThresholds, metrics: Sequence[Metric], clock: StageClock, *,
                montage_slices: int = 6, maps_dir: Path | None = None, progress: bool = True,
                probability_rows: frozenset[str] = frozenset(), workers: int = 0,
                sample: set[int] | None = None, device: torch.device | str = "cpu") -> ScoresPassResult:
    """Threshold every cached map, score it, and rewrite slices.csv complete (the report reads
    it back from disk); with ``maps_dir`` also write the maps as NIfTI volumes there.
    ``probability_rows``: the rows whose maps are probabilities (not min–max renormalised).
    ``sample``: the montage's slices when ``by_key`` holds only a shard of the run's rows (the
    whole run's :func:`sample_positive`); empty batches (another process's) are skipped.
    ``device``: where the maps are put back on the slice grids (the run's device)."""
    if sample is None:
        sample = sample_positive(by_key, methods[0], selection.slice_ids, montage_slices)
    montage: dict[str, list] = {m: [] for m in methods}
    nifti = None
    if maps_dir is not None:
        from .nifti_maps import MapVolumes

        nifti = MapVolumes(maps_dir, methods)
    bar = progress_bar(total=sum(map(bool, selection.batches)), desc="scores", unit="batch", enabled=progress)
    load = _truth_loader(store, slices, selection, workers)
    for b, loaded in prefetched(load, len(selection.batches), workers, clock, skip=lambda b: not selection.batches[b]):
        bar.update(1)
        ids = selection.batches[b]
        with clock("metrics"):
            grid = EvaluationGrid([s[1] for s in loaded], device)  # every method's maps of this batch
        for m in methods:
            with clock("store"):
                q = store.load_unit(m, b, "maps")
            with clock("metrics"):
                sals = grid.maps(q, renormalize=m not in probability_rows)
            for j, sid in enumerate(ids):
                _x, truth, item = loaded[j]
                with clock("metrics"):
                    sal = sals[j]
                    r = by_key[(m, sid)]
                    t = thresholds[m][int(r["fold"])]["threshold"] if strategy.calibrated else strategy.threshold(sal)
                    scores = thresholded_scores(sal, truth, t, metrics, positive=r["role"] == "positive")
                r["threshold"] = t
                r.update(scores)
                if sid in sample:
                    montage[m].append((item, truth, sal, t))
                if nifti is not None:
                    with clock("maps"):
                        nifti.add(m, item, sal)
    bar.close()
    with clock("store"):
        store.rewrite([by_key[(m, s)] for m in methods for s in selection.slice_ids])
    written = None
    if nifti is not None:
        with clock("maps"):
            written = nifti.write()
    return ScoresPassResult(montage, written)
