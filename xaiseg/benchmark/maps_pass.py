"""Stage 2, the *maps pass*: per batch, one forward of each classifier for the slices'
probabilities, then every producer's maps (seeded per producer and batch), cached as float16 on the model
grid with each slice's row of ``slices.csv`` as soon as a (producer, batch) unit is done. Only
a slice with a mask is put back on its grid here, for its threshold-free scores (in its row) and
its Dice-vs-threshold curve (in the cache; NaN for the others, which no threshold is calibrated
on). This pass is what ``--resume`` continues: it skips the units the journal says are done.
"""
from __future__ import annotations

import sys
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from ..progress import progress_bar

from ..attribution.shared import sharing
from ..data.constants import SUBTYPES
from ..distributed import current_world
from ..errors import OutputError, XaisegError
from ..metrics import Metric
from .evaluate import EvaluationGrid, SliceTruth, curve, quantize, threshold_free_scores
from .inputs import Classifier, SliceLoader
from .prefetch import prefetched
from .journal import Journal
from .producers import MapBatch, MapProducer
from .select import Selection, labels_of, record_field
from .timing import StageClock


@dataclass
class MapsContext:
    """What the maps pass reads."""

    selection: Selection
    records: Sequence[Any]
    slices: SliceLoader
    metrics: Sequence[Metric]
    grid: np.ndarray  # the thresholds the Dice curves are sampled at (the strategy's grid)
    seed: int
    device: torch.device
    clock: StageClock
    progress: bool = True
    workers: int = 0  # background threads loading the next batches (prefetch.py)


@dataclass(frozen=True)
class MapsPassResult:
    """The (producer, batch) units this attempt computed (a resumed run skips the rest)."""

    fresh_units: list[tuple[str, int]]


def _resume_how(out_dir: Any) -> str:
    """How to continue an interrupted run: under torchrun, torchrun again with as many processes
    (each continues its own shard; another number is refused)."""
    world = current_world()
    if not world.distributed:
        return f"`xaiseg benchmark <same options> --resume --out {out_dir}`"
    return (f"the same torchrun command ({world.size} processes in all) and `--resume --out {out_dir}`")


def unit_seed(seed: int, method: str, batch: int) -> int:
    # stable across processes (Python's hash() is salted), so a resumed unit draws the same numbers
    return zlib.crc32(f"{seed}:{method}:{batch}".encode()) & 0x7FFFFFFF


def slice_columns(metrics: Sequence[Metric], multi: bool = False) -> list[str]:
    """The columns of slices.csv (a ``checkpoint`` column first when several classifiers run)."""
    free = [m.name for m in metrics if not m.thresholded]
    thr = [m.name for m in metrics if m.thresholded]
    return (["checkpoint"] * multi + ["method", "slice_id", "batch", "subject", "slice", "fold", "role", *SUBTYPES, "any", "prob",
             "spacing_row_mm", "spacing_col_mm", "gt_area_px"] + free + ["map_seconds", "threshold"] + thr
            + ["pred_area_px", "pred_area_mm2"])


def maps_pass(ctx: MapsContext, producers: Sequence[MapProducer], journal: Journal,
              after_unit: Callable[[str, int], None] | None = None) -> MapsPassResult:
    """Compute and store every (producer, batch) unit not yet done. ``after_unit`` is a test
    hook called after every finished unit (raise from it to simulate a crash)."""
    batches, done = ctx.selection.batches, journal.done
    # an empty batch belongs to another process (Selection.shard)
    fresh = [(p.label, b) for b in range(len(batches)) if batches[b] for p in producers if (p.label, b) not in done]
    bar = progress_bar(total=len(fresh), desc="maps", unit="unit", enabled=ctx.progress)
    out_dir = journal.out_dir
    try:
        complete = lambda b: not batches[b] or all((p.label, b) in done for p in producers)  # noqa: E731
        loader = ctx.slices.for_threads(ctx.workers)
        load_batch = lambda b: [loader.load(sid) for sid in batches[b]]  # noqa: E731
        for b, loaded in prefetched(load_batch, len(batches), ctx.workers, ctx.clock, skip=complete):
            ids = batches[b]
            missing = [p for p in producers if (p.label, b) not in done]
            with ctx.clock("store"):
                journal.store.write_brains(b, [s[1].brain for s in loaded])
            batch, probs = _classify(ctx, [p.classifier for p in missing if p.classifier is not None], loaded)
            with ctx.clock("metrics"):
                grid = _PositiveGrid(loaded, ctx.device)  # every producer's maps of this batch
            with sharing() as memo:  # attention methods on the same logit: one forward/backward
                keys = [p.declare(memo, batch) if hasattr(p, "declare") else None for p in missing]
                for producer, key in zip(missing, keys):
                    _unit(ctx, producer, b, ids, loaded, batch, probs.get(id(producer.classifier)), journal, grid,
                          lambda key=key: memo.charged_seconds(key))
                    bar.update(1)
                    bar.set_postfix_str(f"{producer.label} batch {b + 1}/{len(batches)}")
                    if after_unit is not None:
                        after_unit(producer.label, b)
            ctx.clock.count("shared_attention", memo.stats())
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: the finished batches are saved in {out_dir}; continue with {_resume_how(out_dir)}",
              file=sys.stderr, flush=True)
        raise
    except OutputError:  # a full disk: the caller's disk_errors adds how to continue
        bar.close()
        raise
    except XaisegError as exc:  # e.g. a NaN voxel, a truncated file: seen only when its slice is read
        bar.close()  # ends the progress line, so the error gets a line of its own
        raise type(exc)(f"{exc} (the finished batches are saved in {out_dir}; once the input is fixed, "
                        f"continue with --resume --out {out_dir})") from None
    bar.close()
    return MapsPassResult(fresh)


class _PositiveGrid(EvaluationGrid):
    """The :class:`EvaluationGrid` of a batch's slices with a mask (``positives``: their
    positions in the batch), the only ones the maps pass scores."""

    def __init__(self, loaded: list, device: torch.device) -> None:
        self.positives = [j for j, s in enumerate(loaded) if s[1].has_mask]
        super().__init__([loaded[j][1] for j in self.positives], device)


def _classify(ctx: MapsContext, classifiers: Sequence[Classifier], loaded: list) -> tuple[MapBatch, dict[int, np.ndarray]]:
    """The producers' batch (each classifier's input batch, with its own normalisation) and
    each classifier's P(hemorrhage) per slice."""
    with ctx.clock("preprocess"):
        raw = torch.stack([s[0] for s in loaded]).to(ctx.device)
    batch = MapBatch(raw, [str(s[2].get("subject", "")) for s in loaded], {})
    probs: dict[int, np.ndarray] = {}
    for c in classifiers:
        if id(c) in probs:
            continue
        with ctx.clock("preprocess"):
            batch.inputs[id(c)] = c.batch([s[0] for s in loaded], ctx.device)
        with ctx.clock("classify"):
            probs[id(c)] = c.probability(batch.inputs[id(c)])
    return batch, probs


def _unit(ctx: MapsContext, producer: MapProducer, b: int, ids: list[int], loaded: list, batch: MapBatch,
          probs: np.ndarray | None, journal: Journal, grid: _PositiveGrid,
          charged: Callable[[], float] = lambda: 0.0) -> None:
    """One (producer, batch) unit: maps, threshold-free scores, curves, written to the store.
    ``charged``: seconds to add to the unit's own (a pass shared by n methods counts 1/n to each)."""
    torch.manual_seed(unit_seed(ctx.seed, producer.seed_key, b))
    with ctx.clock("attribution"):
        t0 = time.perf_counter()
        q = quantize(producer.maps(batch))  # includes the copy to the host (a CUDA sync)
        dt = time.perf_counter() - t0 + charged()
    with ctx.clock("metrics"):
        rows = [base_row(producer.label, sid, b, ctx.records[sid], loaded[j][2], loaded[j][1], ctx.selection.fold(sid),
                         None if probs is None else probs[j]) for j, sid in enumerate(ids)]
        # only a slice with a mask is scored here or calibrates a threshold; the others' maps are
        # put back on their grids in the scores pass, for their predicted area
        curves = np.full((len(ids), len(ctx.grid)), np.nan)
        pos = grid.positives
        for j, sal in zip(pos, grid.maps(q[pos], renormalize=not producer.probabilities) if pos else []):
            truth = loaded[j][1]
            rows[j].update(threshold_free_scores(sal, truth, ctx.metrics))
            curves[j] = curve(sal, truth, ctx.grid)
        for row in rows:
            row["map_seconds"] = dt / len(ids)
    with ctx.clock("store"):
        journal.store.write_unit(producer.label, b, {"maps": q, "curves": curves}, rows)


def base_row(method: str, sid: int, batch: int, record: Any, item: dict, truth: SliceTruth, fold: int,
             prob: float | None) -> dict:
    """A slice's row of slices.csv before any score: who it is, its labels, its probability
    (empty for a segmenter's row). An unknown (NaN) ``any`` label is written empty, so
    detection leaves the slice out."""
    labels = labels_of(record)
    any_label = bool(labels[-1] > 0.5)
    role = "positive" if truth.has_mask else ("unmasked" if any_label else "negative")
    row: dict[str, Any] = {
        "method": method, "slice_id": sid, "batch": batch,
        "subject": str(item.get("subject", record_field(record, "subject"))),
        "slice": int(item.get("slice", record_field(record, "slice"))), "fold": fold, "role": role,
        "any": None if np.isnan(labels[-1]) else int(any_label), "prob": None if prob is None else float(prob),
        "spacing_row_mm": truth.spacing[0], "spacing_col_mm": truth.spacing[1], "gt_area_px": int(truth.gt.sum()),
    }
    for st, v in zip(SUBTYPES, labels[: len(SUBTYPES)]):
        row[st] = int(v > 0.5)
    return row
