"""``xaiseg.benchmark.run``: every method's maps → masks → scores, on the same slices.

The run is five named stages, each in its own module, each taking and returning typed results
so that it can be read, tested and replaced on its own (a sharded run would run the maps pass
on a shard of the selection and the thresholds and the report once):

1. *select slices* (:mod:`.select`) → :class:`~.select.Selection`: slices, batches, folds;
2. *maps pass* (:mod:`.maps_pass`) → :class:`~.maps_pass.MapsPassResult`: every map producer
   on every batch, cached, with the threshold-free scores and Dice curves (what ``--resume``
   continues);
3. *thresholds* (:mod:`.scores_pass`) → per-fold thresholds of a calibrated strategy;
4. *scores pass* (:mod:`.scores_pass`) → :class:`~.scores_pass.ScoresPassResult`: the
   thresholded scores; slices.csv complete;
5. *report* (here) → :class:`~.result.BenchmarkResult`: summary, CSVs, figures, run.json.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..adapters import unsupported
from ..output.atomic import disk_errors
from ..attribution.spec import method_class
from ..metrics import BUILTIN_ORDER, Metric
from ..output.folder import output_folder
from ..registry import get_metric, list_metrics
from ..distributed import World, broadcast_from_main, current_world, process_group, quiet_unless_main, rank_device
from ..errors import ConfigError
from ..training.verdict import maps_warning
from .config import DEFAULT_METHODS, DEFAULT_NEGATIVE_RATIO, BenchmarkConfig
from .inputs import SliceLoader, open_inputs
from ..workers import default_workers
from .journal import BENCHMARK_OUTPUT, Completed, Journal, RunRecord, describe_run, open_journal
from .maps_pass import MapsContext, MapsPassResult, maps_pass, slice_columns
from .producers import attribution_producers, probability_rows
from .report import summarize, write_summary
from .result import BenchmarkResult
from .scores_pass import Curves, FoldThresholds, ScoresPassResult, calibrate_thresholds, collect_curves, read_rows, scores_pass
from .select import Selection, select_slices
from .store import RunStore
from .timing import StageClock

__all__ = ["BenchmarkConfig", "BenchmarkResult", "DEFAULT_METHODS", "default_out_dir", "registered_metrics", "run"]


def registered_metrics() -> list[Metric]:
    """Every registered metric: the built-ins in their order, then the others by name."""
    names = list_metrics()
    ordered = [n for n in BUILTIN_ORDER if n in names] + [n for n in names if n not in BUILTIN_ORDER]
    return [get_metric(n) for n in ordered]


def default_out_dir() -> Path:
    return Path("xaiseg-results") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def run(config: BenchmarkConfig | None = None, *, dataset: Any = None, model: Any = None,
        _after_unit: Callable[[str, int], None] | None = None, **options: Any) -> BenchmarkResult:
    """Run the benchmark and write its outputs to ``out``; see docs/benchmark.md.

    Pass a :class:`BenchmarkConfig` or its fields as keyword arguments (``data=None`` uses the
    built-in phantom, generated once into the cache; ``checkpoint=None`` the shipped default
    classifier). Instead of paths, an open ``dataset`` (``.records`` plus items as
    :func:`xaiseg.data.open_dataset` yields them) and a loaded ``model`` (``.model``,
    ``.config``, ``.preprocessor`` as :func:`xaiseg.load_model` returns) may be passed.
    ``_after_unit`` is a test hook called after every finished (method, batch) unit (raise
    from it to simulate a crash).
    """
    t_start = time.perf_counter()
    if config is not None and options:
        raise TypeError("run() takes a BenchmarkConfig or its options as keywords, not both")
    cfg = config if config is not None else BenchmarkConfig(**options)
    world = current_world()  # several processes under torchrun (sharded.py), else one
    if world.distributed and cfg.save_maps:
        raise ConfigError("--save-maps writes the NIfTI maps from one process; run without torchrun, "
                          "or drop --save-maps")
    device = rank_device(cfg.device, world)
    if not world.is_main:
        cfg = dataclasses.replace(cfg, progress=False)  # rank 0 alone shows progress
    with process_group(world, device), quiet_unless_main(world):
        return _run(cfg, world, device, dataset, model, _after_unit, t_start)


def _run(cfg: BenchmarkConfig, world: World, device: Any, dataset: Any, model: Any,
         _after_unit: Callable[[str, int], None] | None, t_start: float) -> BenchmarkResult:
    """The run on this process: stage 1 (every process makes the same selection), then stages
    2-5 in the output folder, or over the process group (sharded.py)."""
    metrics = registered_metrics()
    clock = StageClock(device)
    inputs = open_inputs(cfg, device, clock, dataset=dataset, model=model)
    cfg = _supported_defaults(cfg, [c.model for c in inputs.classifiers])
    for c in inputs.classifiers:
        warning = maps_warning(c.config)  # a classifier near chance: its maps show contrast
        if warning:
            print(warning if c.name is None else f"{c.name}: {warning}", file=sys.stderr, flush=True)
    with clock("load methods"):  # a method's bad option fails here
        producers = attribution_producers(cfg.specs, inputs.classifiers, cfg.targets)
    negative_ratio = cfg.negative_ratio
    if negative_ratio is None and inputs.embedded:
        negative_ratio = DEFAULT_NEGATIVE_RATIO  # the embedded default: balanced, and fast
    strategy = cfg.strategy
    selection = select_slices(inputs.records, positives_only=cfg.positives_only, limit=cfg.limit,
                              negative_ratio=negative_ratio, batch_size=cfg.batch_size, folds=cfg.folds,
                              seed=cfg.seed, strategy=strategy)
    if cfg.segmenters:  # loaded once the slices are chosen: the fold guard checks their subjects first
        from .inputs import preprocessing
        from .segmenter_producer import segmenter_producers

        with clock("load model"):
            producers += segmenter_producers(cfg.segmenters, device, preprocessing(inputs.classifier),
                                             {p.label for p in producers}, list(selection.subject_of.values()))
    labels = [p.label for p in producers]  # the rows: method (one classifier) or NAME/method, @SUBTYPE, segmenters
    record = describe_run(cfg, inputs, selection, metrics, device, negative_ratio,
                          [p for p in producers if p.classifier is None])
    out_dir = Path(cfg.out) if cfg.out is not None else default_out_dir()
    if world.distributed:
        out_dir = Path(broadcast_from_main(str(out_dir), world))  # the default's timestamp: rank 0's
    hint = f"free some space, then run the same command with --resume --out {out_dir}"
    if world.distributed:
        from .sharded import sharded_stages

        return sharded_stages(cfg, world, inputs, producers, selection, metrics, strategy, device, clock, record,
                              out_dir, hint, _after_unit, t_start)
    with output_folder(out_dir, BENCHMARK_OUTPUT), disk_errors(out_dir, hint):  # one run per folder
        store = RunStore(out_dir, slice_columns(metrics, cfg.multi), selection.batch_of)
        journal = open_journal(cfg, out_dir, store, record, inputs, selection, labels)
        if isinstance(journal, Completed):
            return BenchmarkResult(summary=journal.summary, paths=journal.paths, out=out_dir, config=record.config)
        try:
            return _stages(cfg, inputs, producers, selection, metrics, strategy, device, clock, record, journal,
                           _after_unit, t_start)
        except BaseException as exc:
            journal.failed(exc)
            raise


def _supported_defaults(cfg: BenchmarkConfig, models: Sequence[Any]) -> BenchmarkConfig:
    """The default method list keeps only the methods that can explain every classifier's model
    family, with one line for each one left out; an explicit ``--methods`` is taken as given."""
    if cfg.methods is not None:
        return cfg
    classes = {label: method_class(spec) for label, spec in cfg.specs.items()}
    left_out: dict[str, str] = {}
    for model in models:
        for label, why in unsupported(classes, model).items():
            left_out.setdefault(label, why)
    for label, why in left_out.items():
        print(f"{label} is left out of the default methods: {why}", file=sys.stderr, flush=True)
    if not left_out:
        return cfg
    return dataclasses.replace(cfg, methods=[label for label in cfg.specs if label not in left_out])


def _stages(cfg, inputs, producers, selection, metrics, strategy, device, clock, record, journal, _after_unit,
            t_start) -> BenchmarkResult:
    """Stages 2-5 in a locked output folder whose journal is open."""
    store, out_dir = journal.store, journal.out_dir
    labels = [p.label for p in producers]

    ctx = maps_context(cfg, inputs, selection, metrics, strategy, device, clock)
    slices, workers = ctx.slices, ctx.workers
    maps = maps_pass(ctx, producers, journal, _after_unit)
    by_key = read_rows(store, labels, selection.slice_ids)
    curves = collect_curves(store, selection, labels, by_key)
    with clock("thresholds"):
        thresholds = calibrate_thresholds(strategy, curves, selection.k)
    scores = scores_pass(store, slices, selection, labels, by_key, strategy, thresholds, metrics, clock,
                         montage_slices=cfg.montage_slices, maps_dir=out_dir / "maps" if cfg.save_maps else None,
                         progress=cfg.progress, probability_rows=probability_rows(producers), workers=workers, device=device)
    return report(cfg, journal, record, selection, metrics, curves, thresholds, maps, scores, clock, t_start,
                  labels, *row_kinds(cfg, producers))


def maps_context(cfg: BenchmarkConfig, inputs: Any, selection: Selection, metrics: list[Metric], strategy: Any,
                 device: Any, clock: StageClock) -> MapsContext:
    """What the maps pass reads for ``selection`` (the run's, or one process's shard of it)."""
    slices = SliceLoader(inputs.dataset, inputs.classifier.loaded.preprocessor,
                         "none" if cfg.brain_mask == "none" else "auto", clock)
    workers = default_workers() if cfg.workers is None else cfg.workers
    return MapsContext(selection, inputs.records, slices, metrics, strategy.grid, cfg.seed, device, clock, cfg.progress,
                       workers)


def row_kinds(cfg: BenchmarkConfig, producers: Sequence[Any]) -> tuple[dict[str, str] | None, frozenset[str]]:
    """The report's ``checkpoint_of`` (each row's classifier, with several) and segmenter rows."""
    checkpoint_of = {p.label: p.classifier.name for p in producers if p.classifier is not None} if cfg.multi else None
    return checkpoint_of, frozenset(p.label for p in producers if p.classifier is None)


def report(cfg: BenchmarkConfig, journal: Journal, record: RunRecord, selection: Selection, metrics: list[Metric],
           curves: Curves, thresholds: FoldThresholds, maps: MapsPassResult, scores: ScoresPassResult,
           clock: StageClock, t_start: float, methods: list[str],
           checkpoint_of: dict[str, str] | None = None, segmenter_rows: frozenset[str] = frozenset()) -> BenchmarkResult:
    """Stage 5: figures, the summary (from slices.csv as read back from disk), its CSVs, and
    run.json marked complete; the map cache is removed unless ``keep_cache``. ``methods``: the
    row labels; ``checkpoint_of``: each one's classifier name when the run has several."""
    out_dir, store = journal.out_dir, journal.store
    paths: dict[str, Any] = {}
    if scores.maps is not None:
        paths["maps"] = scores.maps
    if cfg.figures:
        paths.update(_curve_figures(out_dir / "figures", methods, scores, curves, cfg.strategy.grid, thresholds, clock))
    with clock("report"):
        rows = store.read_rows()
        wall = {m: float(sum(float(r["map_seconds"]) for r in rows if r["method"] == m)) for m in methods}
        summary = summarize(rows, methods, metrics, thresholds, wall, checkpoint_of, segmenter_rows)
        summary["config"] = record.config
        paths.update(write_summary(summary, out_dir, cfg.strategy.spec))
    if cfg.figures:
        from .figures import dice_bars

        with clock("figures"):
            paths["figure_dice_bars"] = dice_bars(summary, out_dir / "figures")
    elapsed = time.perf_counter() - t_start
    # throughput of this attempt: a resumed run computes only the units that were missing
    fresh = maps.fresh_units
    batches = selection.batches
    timing = clock.report(elapsed, len({sid for _m, b in fresh for sid in batches[b]}),
                          sum(len(batches[b]) for _m, b in fresh))
    journal.write(status="complete", finished=_dt.datetime.now().isoformat(timespec="seconds"),
                  elapsed_s=elapsed,  # this attempt only
                  method_wall_s=wall, detection=summary.get("detection", summary.get("detection_by_checkpoint")),
                  timing=timing)  # this attempt only: a resumed attempt skips the finished units
    paths["run_json"] = journal.run_json
    paths["slices_csv"] = store.csv_path
    if not cfg.keep_cache:
        shutil.rmtree(store.cache, ignore_errors=True)
    return BenchmarkResult(summary=summary, paths=paths, out=out_dir, config=record.config, timing=timing)


def _curve_figures(fig_dir: Path, methods: list[str], scores: ScoresPassResult, curves: Curves, grid: np.ndarray,
                   thresholds: FoldThresholds, clock: StageClock) -> dict[str, Path]:
    """The overlay montage of each method and the mean Dice-vs-threshold curves."""
    from .figures import dice_curves, overlay_montages

    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    with clock("figures"):
        montages = overlay_montages({m: scores.montage.get(m) or [] for m in methods}, fig_dir)
        paths.update({f"figure_montage_{m}": p for m, p in montages.items()})
        paths["figure_dice_curves"] = dice_curves(curves.mean(), grid, thresholds, fig_dir)
    return paths
