"""Stages 2-5 over the processes ``torchrun`` started (``torchrun --nproc-per-node N -m xaiseg benchmark``).

Every process made the same selection (stage 1). Batch ``b`` belongs to process ``b % N``
(:meth:`~.select.Selection.shard`): whole batches, so every (method, batch) unit has the
composition and the seed it has in a single-process run. Each process runs the maps pass on
its batches into its own *shard store*, ``<out>/shards/rank-K-of-N/`` (a slices.csv journal
and a map cache, as a single-process run keeps in ``<out>``), on the machine it runs on:
nothing here assumes a file system shared between machines, everything rank 0 needs travels
through the collectives. Rank 0 alone owns the output folder: it checks and locks it before
any other process writes; it gathers the threshold-free rows and the Dice curves, calibrates
the thresholds and broadcasts them; every process scores its shard; rank 0 gathers the final
rows and the montage's slices and writes slices.csv in the single-process order, then the
report exactly as a single-process run does. ``--resume`` continues every shard from its own
journal (a run resumes with the number of processes it started with; journal.py checks it).
"""
from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..distributed import World, broadcast_from_main, gather_to_main, on_main
from ..output.atomic import disk_errors
from ..output.folder import output_folder
from .journal import BENCHMARK_OUTPUT, Completed, Journal, open_journal
from .maps_pass import MapsPassResult, maps_pass, slice_columns
from .result import BenchmarkResult
from .producers import probability_rows
from .scores_pass import Curves, ScoresPassResult, calibrate_thresholds, collect_curves, read_rows, sample_positive, scores_pass
from .select import Selection
from .store import RunStore

SHARDS_DIR = "shards"

Rows = dict[tuple[str, int], dict]  # (row label, slice id) → the slice's row of slices.csv


def shard_dir(out_dir: Path, world: World) -> Path:
    """Where process ``world.rank`` keeps its shard's journal and maps (on its own machine)."""
    return Path(out_dir) / SHARDS_DIR / f"rank-{world.rank}-of-{world.size}"


def sharded_stages(cfg: Any, world: World, inputs: Any, producers: Sequence[Any], selection: Selection,
                   metrics: list, strategy: Any, device: Any, clock: Any, record: Any, out_dir: Path, hint: str,
                   after_unit: Callable[[str, int], None] | None, t_start: float) -> BenchmarkResult:
    """Stages 2-5 of this process; rank 0 takes (or refuses) the output folder first."""
    labels = [p.label for p in producers]
    with ExitStack() as stack:
        def take() -> Journal | Completed:  # rank 0: the single-process run's checks, before anyone writes
            stack.enter_context(output_folder(out_dir, BENCHMARK_OUTPUT))
            stack.enter_context(disk_errors(out_dir, hint))
            store = RunStore(out_dir, slice_columns(metrics, cfg.multi), selection.batch_of)
            return open_journal(cfg, out_dir, store, record, inputs, selection, labels, processes=world.size)

        journal = on_main(take, world)  # a refusal there is the same one-line error on every rank
        if isinstance(journal, Completed):
            state: Any = BenchmarkResult(summary=journal.summary, paths=journal.paths, out=out_dir, config=record.config)
        else:
            state = None if journal is None else int(journal.meta["attempts"]) > 1
        state = broadcast_from_main(state, world)
        if isinstance(state, BenchmarkResult):  # already complete: nothing to compute
            return state
        if not world.is_main:
            stack.enter_context(disk_errors(out_dir, hint))
        try:
            result = _stages(cfg, world, inputs, producers, selection, metrics, strategy, device, clock, record,
                             journal, out_dir, bool(state), after_unit, t_start)
        except BaseException as exc:
            if isinstance(journal, Journal):
                journal.failed(exc)
            raise
    if not cfg.keep_cache:
        _remove_shards(out_dir, world)
    return result


def _stages(cfg: Any, world: World, inputs: Any, producers: Sequence[Any], selection: Selection, metrics: list,
            strategy: Any, device: Any, clock: Any, record: Any, journal: Journal | None, out_dir: Path,
            resumed: bool, after_unit: Callable[[str, int], None] | None, t_start: float) -> BenchmarkResult:
    """Maps pass on the shard → thresholds on rank 0 → scores pass on the shard → report on rank 0."""
    from .runner import maps_context, report, row_kinds

    labels = [p.label for p in producers]
    shard = selection.shard(world.rank, world.size)
    store, done = _shard_store(out_dir, world, slice_columns(metrics, cfg.multi), shard, labels, resumed)
    ctx = maps_context(cfg, inputs, shard, metrics, strategy, device, clock)
    maps = maps_pass(ctx, producers, Journal(out_dir, store, {}, done), after_unit)
    by_key = read_rows(store, labels, shard.slice_ids)
    units = {(m, b): store.load_unit(m, b, "curves") for m in labels for b, ids in enumerate(shard.batches) if ids}
    gathered = gather_to_main((by_key, units), world)
    calibrated = on_main(lambda: _calibrate(strategy, selection, labels, gathered, cfg.montage_slices, clock), world)
    thresholds, sample = broadcast_from_main(None if calibrated is None else calibrated[1:], world)
    scores = scores_pass(store, ctx.slices, shard, labels, by_key, strategy, thresholds, metrics, clock,
                         montage_slices=cfg.montage_slices, progress=cfg.progress, workers=ctx.workers, sample=sample, device=ctx.device,
                         probability_rows=probability_rows(producers))
    in_montage = [sid for sid in shard.slice_ids if sid in sample]  # the order the scores pass met them
    montage = {m: list(zip(in_montage, scores.montage[m])) for m in labels}
    final = gather_to_main((by_key, montage, maps.fresh_units), world)

    def write() -> BenchmarkResult:
        assert journal is not None and calibrated is not None and final is not None
        rows, pictures, fresh = _merge(final, selection)
        journal.store.rewrite([rows[(m, s)] for m in labels for s in selection.slice_ids])
        return report(cfg, journal, record, selection, metrics, calibrated[0], thresholds, MapsPassResult(fresh),
                      ScoresPassResult(pictures), clock, t_start, labels, *row_kinds(cfg, producers))

    result = on_main(write, world)
    return broadcast_from_main(result, world)  # every process returns the run's result


def _shard_store(out_dir: Path, world: World, columns: list[str], shard: Selection, labels: list[str],
                 resumed: bool) -> tuple[RunStore, set[tuple[str, int]]]:
    """This process's shard store and the units its journal has done. A fresh run starts it
    empty: rank 0 checked its own folder, but this process may run on another machine, where
    an earlier run's shard of the same name may be left."""
    path = shard_dir(out_dir, world)
    if not resumed:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    store = RunStore(path, columns, shard.batch_of)
    done = store.recover(labels, shard.slice_ids) if resumed else set()
    store.start()
    return store, done


class _GatheredCurves:
    """The Dice curves of every (method, batch) unit, gathered from the shards, read as
    :func:`collect_curves` reads a store's cache."""

    def __init__(self, units: dict[tuple[str, int], np.ndarray]) -> None:
        self.units = units

    def load_unit(self, method: str, batch: int, key: str) -> np.ndarray:
        assert key == "curves"
        return self.units[(method, batch)]


def _calibrate(strategy: Any, selection: Selection, labels: list[str], gathered: list | None,
               montage_slices: int, clock: Any) -> tuple[Curves, dict, set[int]]:
    """Rank 0: the whole run's curves (in the single-process order), thresholds and montage slices."""
    assert gathered is not None
    rows: Rows = {}
    units: dict[tuple[str, int], np.ndarray] = {}
    for shard_rows, shard_units in gathered:
        rows.update(shard_rows)
        units.update(shard_units)
    curves = collect_curves(_GatheredCurves(units), selection, labels, rows)  # type: ignore[arg-type]
    with clock("thresholds"):  # the stage the single-process run times under this name
        thresholds = calibrate_thresholds(strategy, curves, selection.k)
    return curves, thresholds, sample_positive(rows, labels[0], selection.slice_ids, montage_slices)


def _merge(final: list, selection: Selection) -> tuple[Rows, dict[str, list], list[tuple[str, int]]]:
    """Rank 0: every shard's scored rows, each method's montage slices in the run's slice
    order, and the units this attempt computed."""
    order = {sid: i for i, sid in enumerate(selection.slice_ids)}
    rows: Rows = {}
    pictures: dict[str, list] = {}
    fresh: list[tuple[str, int]] = []
    for shard_rows, shard_montage, shard_fresh in final:
        rows.update(shard_rows)
        fresh.extend(shard_fresh)
        for m, pairs in shard_montage.items():
            pictures.setdefault(m, []).extend(pairs)
    pictures = {m: [entry for _sid, entry in sorted(pairs, key=lambda p: order[p[0]])] for m, pairs in pictures.items()}
    return rows, pictures, sorted(fresh, key=lambda u: (u[1], u[0]))


def _remove_shards(out_dir: Path, world: World) -> None:
    """The shard stores go with the map cache once the run is complete (``--keep-cache`` keeps them)."""
    shutil.rmtree(shard_dir(out_dir, world), ignore_errors=True)
    gather_to_main(None, world)  # every process has removed its own before the folder goes
    for folder in (Path(out_dir) / SHARDS_DIR, Path(out_dir)) if not world.is_main else (Path(out_dir) / SHARDS_DIR,):
        try:
            folder.rmdir()  # only when empty: on another machine <out> holds nothing else of ours
        except OSError:
            pass
