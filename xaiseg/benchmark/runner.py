"""``xaiseg.benchmark.run``: every method's maps → masks → scores, on the same slices.

Two passes over fixed batches of slices:

1. *maps* — per batch: one forward for the classifier's probabilities, then each method's maps
   (seeded per method and batch), cached as float16 on the model grid; the threshold-free
   scores and each slice's Dice-vs-threshold curve go to ``slices.csv`` as soon as a
   (method, batch) unit is done. This pass is what ``--resume`` continues.
2. *scores* — thresholds (per map, or calibrated per subject-wise fold from the cached curves),
   then the thresholded scores from the cached maps; ``slices.csv`` is rewritten complete and
   the summary, figures, optional NIfTI maps and run.json are written.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.constants import SUBTYPES
from ..errors import ConfigError, DataError, XaisegError
from ..method_spec import MethodSpec, build_method, method_class, parse_method_spec, split_method_list
from ..metrics import BUILTIN_ORDER, Metric
from ..outputs import check_out_dir
from ..registry import get_metric, list_metrics
from ..thresholds import GridSearchThreshold, ThresholdStrategy, parse_threshold
from . import provenance
from .evaluate import SliceTruth, curve, evaluation_map, quantize, thresholded_scores, threshold_free_scores
from .folds import subject_folds
from .report import summarize, table, write_summary
from .store import RunStore
from .timing import StageClock

DEFAULT_METHODS: tuple[str, ...] = (
    "hgi-sam", "swin-sam", "gradcam", "rollout", "grad-rollout", "saliency", "centre-prior",
)
DEFAULT_NEGATIVE_RATIO = 1.0
CURVE_GRID = GridSearchThreshold().grid  # 0.01 … 0.99: Dice-vs-threshold curves for every strategy


@dataclass
class BenchmarkResult:
    """What :func:`run` returns: the summary (plain dicts/lists/floats, as in summary.json),
    the paths written, and the output folder."""

    summary: dict[str, Any]
    paths: dict[str, Path]
    out: Path
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)  # run.json's "timing": seconds per stage, slices/s

    def table(self) -> str:
        return table(self.summary)


def _split_methods(methods: str | Sequence[str] | None) -> dict[str, MethodSpec]:
    """Method specs by their canonical label (``hgi-sam``, ``hgi-sam{"stages":[0,1,2,3]}``)."""
    if methods is None:
        texts = list(DEFAULT_METHODS)
    elif isinstance(methods, str):
        texts = split_method_list(methods)
    else:
        texts = [str(m).strip() for m in methods if m and str(m).strip()]
    if not texts:
        raise ConfigError("--methods is empty; give at least one method (see `xaiseg methods`)")
    specs = [parse_method_spec(t) for t in texts]
    labels = [sp.label for sp in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--methods lists a method twice: {','.join(labels)}")
    return dict(zip(labels, specs))


def _check_methods(specs: dict[str, MethodSpec]) -> dict[str, type]:
    return {label: method_class(spec) for label, spec in specs.items()}


def _metrics() -> list[Metric]:
    names = list_metrics()
    ordered = [n for n in BUILTIN_ORDER if n in names] + [n for n in names if n not in BUILTIN_ORDER]
    return [get_metric(n) for n in ordered]


def _device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r}: {exc}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    return d


def _unit_seed(seed: int, method: str, batch: int) -> int:
    # stable across processes (Python's hash() is salted), so a resumed unit draws the same numbers
    return zlib.crc32(f"{seed}:{method}:{batch}".encode()) & 0x7FFFFFFF


def _probability(logits: torch.Tensor, task: str, target: int) -> torch.Tensor:
    """P(hemorrhage) per slice: softmax over a binary model's logits, sigmoid of a 1-logit or
    multi-label model's explained logit."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    if task == "binary":
        return torch.softmax(logits, dim=1)[:, target]
    return torch.sigmoid(logits[:, target])


class _Slices:
    """Reads a slice once and derives what the model and the scoring need from it."""

    def __init__(self, dataset: Any, preprocessor: Any, brain_mode: str, clock: StageClock) -> None:
        self.ds = dataset
        self.pre = preprocessor
        self.brain_mode = brain_mode
        self.clock = clock

    def load(self, sid: int) -> tuple[torch.Tensor, SliceTruth, dict]:
        with self.clock("load"):
            item = self.ds[sid]
            hu = np.asarray(item["image"], dtype=np.float32)
            # data sets without masks (RSNA) still give detection metrics; their slices score as unmasked
            gt = np.asarray(item["mask"]) > 0 if item.get("mask") is not None else np.zeros(hu.shape, bool)
        with self.clock("preprocess"):
            brain = None
            if self.brain_mode != "none":
                brain = item.get("brain")
                if brain is None:
                    brain = _auto_brain(hu, item["spacing"])
                brain = np.asarray(brain) > 0
            image, _m, _b, geometry = self.pre(hu)
            x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).float()
        spacing = tuple(float(s) for s in item["spacing"])
        return x, SliceTruth(gt=gt, spacing=spacing, brain=brain, geometry=geometry), item


def _auto_brain(hu: np.ndarray, spacing: Any) -> np.ndarray:
    from ..data import brain as brain_mod

    return np.asarray(brain_mod.brain_mask(hu, spacing))


def _spread(ids: list[int], n: int) -> list[int]:
    """``n`` of ``ids`` evenly spread (so every subject keeps some)."""
    if n >= len(ids):
        return list(ids)
    if n <= 0:
        return []
    return [ids[i] for i in np.unique(np.round(np.linspace(0, len(ids) - 1, n)).astype(int))]


def _check_negative_ratio(ratio: float | None) -> None:
    if ratio is not None and not (math.isfinite(ratio) and ratio >= 0):
        raise ConfigError(f"--negative-ratio must be a number >= 0, got {ratio}")


def _select(records: Sequence[Any], positives_only: bool, limit: int | None, negative_ratio: float | None = None) -> list[int]:
    ids = [i for i, r in enumerate(records) if not positives_only or _any_label(r)]
    _check_negative_ratio(negative_ratio)
    if negative_ratio is not None and not positives_only:
        pos = [i for i in ids if _any_label(records[i])]
        neg = [i for i in ids if not _any_label(records[i])]
        ids = sorted(pos + _spread(neg, int(round(negative_ratio * len(pos)))))
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {limit}")
        ids = _spread(ids, limit)  # evenly over the data set: every subject (and fold) keeps some
    if not ids:
        raise DataError("no slices to score" + (" (no hemorrhage-positive slice)" if positives_only else ""))
    return ids


def _rec(r: Any, key: str) -> Any:
    return r[key] if isinstance(r, dict) else getattr(r, key)


def _labels(r: Any) -> np.ndarray:
    return np.asarray(_rec(r, "labels"), dtype=np.float32).reshape(-1)


def _any_label(r: Any) -> bool:
    return bool(_labels(r)[-1] > 0.5)


def default_out_dir() -> Path:
    return Path("xaiseg-results") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def run(
    data: str | Path | None = None,
    layout: str = "auto",
    checkpoint: str | Path | None = None,
    methods: str | Sequence[str] | None = None,
    threshold: str | ThresholdStrategy = "grid",
    folds: int = 5,
    brain_mask: str = "auto",
    out: str | Path | None = None,
    device: str | torch.device | None = "auto",
    batch_size: int = 8,
    resume: bool = False,
    limit: int | None = None,
    positives_only: bool = False,
    negative_ratio: float | None = None,
    save_maps: bool = False,
    seed: int = 0,
    figures: bool = True,
    keep_cache: bool = False,
    skip_bad: bool = False,
    progress: bool = True,
    montage_slices: int = 6,
    dataset: Any = None,
    model: Any = None,
    _after_unit: Callable[[str, int], None] | None = None,
) -> BenchmarkResult:
    """Run the benchmark and write its outputs to ``out``; see docs/benchmark.md.

    ``data=None`` uses the built-in phantom (generated once into the cache) and
    ``checkpoint=None`` the shipped default classifier. Instead of paths, an open ``dataset``
    (``.records`` plus items as :func:`xaiseg.data.open_dataset` yields them) and a loaded
    ``model`` (``.model``, ``.config``, ``.preprocessor`` as :func:`xaiseg.load_model` returns)
    may be passed. ``skip_bad`` leaves out unreadable or inconsistent files of ``data`` (counted
    in run.json's ``config.skipped`` and reported) instead of stopping at the first. ``_after_unit`` is a test hook called
    after every finished (method, batch) unit (raise from it to simulate a crash).
    """
    t_start = time.perf_counter()
    embedded = data is None and dataset is None  # the no-argument default run
    specs = _split_methods(methods)
    method_names = list(specs)
    classes = _check_methods(specs)
    strategy = parse_threshold(threshold)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    brain_mask = str(brain_mask)
    if brain_mask not in ("auto", "none") and not Path(brain_mask).is_dir():
        raise ConfigError(f"--brain-mask must be auto, none or a folder of brain masks; {brain_mask!r} is not a folder")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    _check_negative_ratio(negative_ratio)  # before any work; _select checks again for direct callers
    if resume and out is None:
        raise ConfigError("--resume needs --out: the folder of the run to continue")
    if out is not None:
        check_out_dir(out)
        if resume and not (Path(out) / "run.json").exists():
            raise ConfigError(f"--resume: {str(out)!r} holds no benchmark run to continue (run.json is missing); drop --resume to start one")
    dev = _device(device)
    metrics = _metrics()
    clock = StageClock(dev)

    from .defaults import resolve_checkpoint, resolve_data

    if dataset is None:
        from ..data import open_dataset  # the data layer is only needed now

        with clock("open data"):  # the first default run also generates the phantom here
            data_path, layout = resolve_data(data, layout, progress=progress)
        ds_kwargs: dict[str, Any] = {"skip_bad": True} if skip_bad else {}
        if brain_mask not in ("auto", "none"):
            ds_kwargs["brain_dir"] = Path(brain_mask)
        try:
            with clock("open data"):
                dataset = open_dataset(data_path, layout, **ds_kwargs)
        except TypeError:
            raise ConfigError(f"--brain-mask DIR is not supported for the {layout!r} layout; use auto or none") from None
    else:
        data_path = Path(data) if data is not None else None
    if model is None:
        from .. import load_model

        with clock("load model"):
            checkpoint_dir = resolve_checkpoint(checkpoint)
            loaded = load_model(checkpoint_dir, device=dev)
            ck_hash = provenance.checkpoint_hash(checkpoint_dir)
    else:
        loaded, checkpoint_dir = model, None
        loaded.model.to(dev)
        ck_hash = provenance.state_dict_hash(loaded.model)
    records = list(dataset.records)
    if negative_ratio is None and embedded:
        negative_ratio = DEFAULT_NEGATIVE_RATIO  # the embedded default: balanced, and fast
    slice_ids = _select(records, positives_only, limit, negative_ratio)
    batches = [slice_ids[i : i + batch_size] for i in range(0, len(slice_ids), batch_size)]
    batch_of = {sid: b for b, ids in enumerate(batches) for sid in ids}

    model = loaded.model.eval()
    cfg = dict(loaded.config)
    target = int(cfg.get("target_index", 1))
    task = str(cfg.get("task", "binary"))
    if methods is None:  # the default list keeps only the methods that can explain this model family
        from ..adapters import unsupported

        for name, why in unsupported(classes, model).items():
            print(f"{name} is left out of the default methods: {why}", file=sys.stderr, flush=True)
            del classes[name], specs[name]
            method_names.remove(name)
    instances = {}
    for name, cls in classes.items():
        instances[name] = build_method(cls, specs[name], model)

    subj = {sid: str(_rec(records[sid], "subject")) for sid in slice_ids}
    pos_subjects = {subj[sid] for sid in slice_ids if _any_label(records[sid])}
    k = folds if strategy.calibrated else max(2, folds)
    if strategy.calibrated:
        fold_of_subject = subject_folds(subj.values(), pos_subjects, k, seed)
    else:  # folds only matter for calibration; still recorded so rows look alike
        try:
            fold_of_subject = subject_folds(subj.values(), pos_subjects, k, seed)
        except ConfigError:
            fold_of_subject = {s: 0 for s in subj.values()}

    out_dir = Path(out) if out is not None else default_out_dir()
    config = {
        "data": None if data_path is None else str(data_path), "layout": layout,
        "checkpoint": None if checkpoint_dir is None else str(checkpoint_dir),
        "methods": method_names, "threshold": strategy.spec, "folds": k, "brain_mask": brain_mask,
        "batch_size": batch_size, "limit": limit, "positives_only": positives_only,
        "negative_ratio": negative_ratio, "seed": seed,
        "device": str(dev), "metrics": [m.name for m in metrics], "model": cfg.get("model") or cfg.get("preset") or cfg.get("timm_name"),
        "task": task, "target_index": target,
        "skip_bad": bool(skip_bad), "skipped": list(getattr(dataset, "skipped", [])),
    }
    if embedded:
        from .defaults import DEFAULT_PHANTOM

        config["phantom"] = dict(DEFAULT_PHANTOM)
    truth_of = getattr(dataset, "truth_files", None)  # a dataset passed in may not have it
    truth = [p for s_ in sorted({subj[sid] for sid in slice_ids}) for p in (truth_of(s_) if truth_of else ())]
    fingerprint = provenance.data_fingerprint([records[i] for i in slice_ids], truth_files=truth)
    # what must not change between a run and its resumption (the device may: CPU results are
    # deterministic; on CUDA some kernels are not, see docs)
    key_src = {k2: v for k2, v in config.items() if k2 != "device"} | {
        "data_fingerprint": fingerprint, "checkpoint_sha256": ck_hash, "slices": slice_ids}
    config_key = hashlib.sha256(json.dumps(key_src, sort_keys=True, default=str).encode()).hexdigest()

    run_json = out_dir / "run.json"
    store_cols = _columns(metrics)
    store = RunStore(out_dir, store_cols, batch_of)
    done: set[tuple[str, int]] = set()
    attempts = 1
    if run_json.exists() or store.csv_path.exists():
        if not resume:
            raise ConfigError(f"{out_dir} already holds a benchmark run; pass --resume to continue it or choose another --out")
        try:
            old = json.loads(run_json.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{out_dir}/run.json is missing or unreadable; cannot resume, choose another --out") from None
        if old.get("config_key") != config_key:
            raise ConfigError(f"{out_dir} holds a run with a different configuration or data; cannot resume it with these options")
        if old.get("status") == "complete" and (out_dir / "summary.json").exists():
            if save_maps and not (out_dir / "maps").is_dir():
                # the maps of a finished run are gone with its cache; nothing can write them now
                raise ConfigError(f"{out_dir} is complete and was run without --save-maps; to get its maps, "
                                  "run it again with --save-maps into another --out")
            summary = json.loads((out_dir / "summary.json").read_text())
            if progress:
                print(f"{out_dir}: this run is already complete; nothing to resume", flush=True)
            # the keys of a fresh run: summary.csv -> summary_csv, run.json -> run_json, ...
            paths = {p.name.replace(".", "_"): p for p in out_dir.glob("*.*") if p.is_file()}
            return BenchmarkResult(summary=summary, paths=paths, out=out_dir, config=config)
        attempts = int(old.get("attempts", 1)) + 1
        done = store.recover(method_names, slice_ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    store.start()
    started = _dt.datetime.now().isoformat(timespec="seconds")
    meta = {
        "status": "running", "started": started, "config": config, "config_key": config_key,
        "data_fingerprint": fingerprint, "checkpoint_sha256": ck_hash, "checkpoint_config": cfg,
        "versions": provenance.versions(), "seeds": {"benchmark": seed, "per_unit": "crc32(seed:method:batch)",
                                                      "folds": seed},
        "n_slices": len(slice_ids), "n_batches": len(batches), "resumed": attempts > 1, "attempts": attempts,
    }
    run_json.write_text(json.dumps(meta, indent=2, default=str) + "\n")

    slices = _Slices(dataset, loaded.preprocessor, "none" if brain_mask == "none" else "auto", clock)
    todo = len(batches) * len(method_names) - len(done)
    bar = tqdm(total=todo, desc="maps", unit="unit", disable=not progress)
    curve_grid = strategy.grid if isinstance(strategy, GridSearchThreshold) else CURVE_GRID
    try:
        for b, ids in enumerate(batches):
            missing = [m for m in method_names if (m, b) not in done]
            if not missing:
                continue
            loaded_slices = [slices.load(sid) for sid in ids]
            with clock("preprocess"):
                x = torch.stack([s[0] for s in loaded_slices]).to(dev)
                if hasattr(loaded, "normalize"):  # the checkpoint's per-channel normalisation, as in training
                    x = loaded.normalize(x)
            with clock("classify"), torch.no_grad():
                probs = _probability(model(x).float(), task, target).cpu().numpy().astype(np.float64)
            for method in missing:
                torch.manual_seed(_unit_seed(seed, method, b))
                with clock("attribution"):
                    t0 = time.perf_counter()
                    maps = instances[method].attribute(x, target=target)
                    q = quantize(maps)  # includes the copy to the host (a CUDA sync)
                    dt = time.perf_counter() - t0
                rows, curves = [], []
                with clock("metrics"):
                    for j, sid in enumerate(ids):
                        _x, truth, item = loaded_slices[j]
                        sal = evaluation_map(q[j], truth)
                        row = _base_row(method, sid, b, records[sid], item, truth, fold_of_subject[subj[sid]], probs[j])
                        row["map_seconds"] = dt / len(ids)
                        if row["role"] == "positive":
                            row.update(threshold_free_scores(sal, truth, metrics))
                        curves.append(curve(sal, truth, curve_grid))
                        rows.append(row)
                with clock("store"):
                    store.write_unit(method, b, {"maps": q, "curves": np.stack(curves)}, rows)
                bar.update(1)
                bar.set_postfix_str(f"{method} batch {b + 1}/{len(batches)}")
                if _after_unit is not None:
                    _after_unit(method, b)
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: the finished batches are saved in {out_dir}; continue with "
              f"`xaiseg benchmark <same options> --resume --out {out_dir}`", file=sys.stderr, flush=True)
        raise
    except XaisegError as exc:  # e.g. a NaN voxel, a truncated file: seen only when its slice is read
        bar.close()  # ends the progress line, so the error gets a line of its own
        raise type(exc)(f"{exc} (the finished batches are saved in {out_dir}; once the input is fixed, "
                        f"continue with --resume --out {out_dir})") from None
    bar.close()

    paths = _finalize(
        out_dir, store, slices, batches, method_names, metrics, strategy, k, slice_ids,
        figures=figures, save_maps=save_maps, progress=progress, montage_slices=montage_slices, clock=clock,
    )
    with clock("report"):
        rows = store.read_rows()
        wall = {m: float(sum(float(r["map_seconds"]) for r in rows if r["method"] == m)) for m in method_names}
        summary = summarize(rows, method_names, metrics, paths.pop("_thresholds"), wall)
        summary["config"] = config
        paths.update(write_summary(summary, out_dir, strategy.spec))
    if figures:
        from .figures import dice_bars

        with clock("figures"):
            paths["figure_dice_bars"] = dice_bars(summary, out_dir / "figures")
    elapsed = time.perf_counter() - t_start
    # throughput of this attempt: a resumed run computes only the units that were missing
    fresh_units = [(m, b) for b in range(len(batches)) for m in method_names if (m, b) not in done]
    fresh_slices = {sid for _m, b in fresh_units for sid in batches[b]}
    timing = clock.report(elapsed, len(fresh_slices), sum(len(batches[b]) for _m, b in fresh_units))
    meta.update({
        "status": "complete", "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        "elapsed_s": elapsed,  # this attempt only
        "method_wall_s": wall, "detection": summary.get("detection"),
        "timing": timing,  # this attempt only: a resumed attempt skips the finished units
    })
    run_json.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    paths["run_json"] = run_json
    paths["slices_csv"] = store.csv_path
    if not keep_cache:
        import shutil

        shutil.rmtree(store.cache, ignore_errors=True)
    return BenchmarkResult(summary=summary, paths=paths, out=out_dir, config=config, timing=timing)


def _columns(metrics: Sequence[Metric]) -> list[str]:
    free = [m.name for m in metrics if not m.thresholded]
    thr = [m.name for m in metrics if m.thresholded]
    return (["method", "slice_id", "batch", "subject", "slice", "fold", "role", *SUBTYPES, "any", "prob",
             "spacing_row_mm", "spacing_col_mm", "gt_area_px"] + free + ["map_seconds", "threshold"] + thr
            + ["pred_area_px", "pred_area_mm2"])


def _base_row(method: str, sid: int, batch: int, record: Any, item: dict, truth: SliceTruth, fold: int, prob: float) -> dict:
    labels = _labels(record)
    any_label = bool(labels[-1] > 0.5)
    has_mask = bool(truth.gt.any())
    role = "positive" if has_mask else ("unmasked" if any_label else "negative")
    row: dict[str, Any] = {
        "method": method, "slice_id": sid, "batch": batch, "subject": str(item.get("subject", _rec(record, "subject"))),
        "slice": int(item.get("slice", _rec(record, "slice"))), "fold": fold, "role": role,
        "any": int(any_label), "prob": float(prob), "spacing_row_mm": truth.spacing[0],
        "spacing_col_mm": truth.spacing[1], "gt_area_px": int(truth.gt.sum()),
    }
    for st, v in zip(SUBTYPES, labels[: len(SUBTYPES)]):
        row[st] = int(v > 0.5)
    return row


def _finalize(out_dir, store, slices, batches, methods, metrics, strategy, k, slice_ids, *, figures, save_maps,
              progress, montage_slices, clock: StageClock) -> dict[str, Any]:
    """The scores pass: thresholds, thresholded metrics, the complete slices.csv, figures, maps."""
    rows = store.read_rows()
    by_key = {(r["method"], int(r["slice_id"])): r for r in rows}
    missing = [(m, s) for m in methods for s in slice_ids if (m, s) not in by_key]
    if missing:
        raise RuntimeError(f"{len(missing)} (method, slice) rows are missing after the maps pass")
    grid = strategy.grid if isinstance(strategy, GridSearchThreshold) else CURVE_GRID
    # Dice-vs-threshold curves of the positive slices, per method (calibration and the figure)
    curves: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    folds_of: dict[str, list[int]] = {m: [] for m in methods}
    for m in methods:
        for b, ids in enumerate(batches):
            c = store.load_unit(m, b, "curves")
            for j, sid in enumerate(ids):
                r = by_key[(m, sid)]
                if r["role"] == "positive":
                    curves[m].append(c[j])
                    folds_of[m].append(int(r["fold"]))
    thresholds: dict[str, list[dict]] = {}
    if strategy.calibrated:
        with clock("thresholds"):
            for m in methods:
                if not curves[m]:
                    raise DataError("grid thresholds need hemorrhage-positive slices with masks; the selection has none")
                thresholds[m] = strategy.calibrate(np.stack(curves[m]), np.array(folds_of[m]), k)
    sample = _sample_positive(by_key, methods[0], slice_ids, montage_slices)
    montage: dict[str, list] = {m: [] for m in methods}
    nifti = None
    if save_maps:
        from .nifti_maps import MapVolumes

        nifti = MapVolumes(out_dir / "maps", methods)
    for b, ids in enumerate(tqdm(batches, desc="scores", unit="batch", disable=not progress)):
        loaded = [slices.load(sid) for sid in ids]
        for m in methods:
            with clock("store"):
                q = store.load_unit(m, b, "maps")
            for j, sid in enumerate(ids):
                _x, truth, item = loaded[j]
                with clock("metrics"):
                    sal = evaluation_map(q[j], truth)
                    r = by_key[(m, sid)]
                    t = thresholds[m][int(r["fold"])]["threshold"] if strategy.calibrated else strategy.threshold(sal)
                    scores = thresholded_scores(sal, truth, t, metrics)
                r["threshold"] = t
                for key, v in scores.items():
                    if key in ("pred_area_px", "pred_area_mm2") or r["role"] == "positive":
                        r[key] = v
                if sid in sample:
                    montage[m].append((item, truth, sal, t))
                if nifti is not None:
                    with clock("maps"):
                        nifti.add(m, item, sal)
    with clock("store"):
        store.rewrite([by_key[(m, s)] for m in methods for s in slice_ids])
    paths: dict[str, Any] = {"_thresholds": thresholds}
    if nifti is not None:
        with clock("maps"):
            paths["maps"] = nifti.write()
    if figures:
        from .figures import dice_curves, overlay_montage

        fig_dir = out_dir / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        with clock("figures"):
            for m in methods:
                if montage[m]:
                    paths[f"figure_montage_{m}"] = overlay_montage(m, montage[m], fig_dir)
            paths["figure_dice_curves"] = dice_curves(
                {m: np.stack(curves[m]).mean(axis=0) for m in methods if curves[m]}, grid, thresholds, fig_dir)
    return paths


def _sample_positive(by_key: dict, method: str, slice_ids: list[int], n: int) -> set[int]:
    pos = [s for s in slice_ids if by_key[(method, s)]["role"] == "positive"]
    if not pos or n <= 0:
        return set()
    pick = np.unique(np.round(np.linspace(0, len(pos) - 1, min(n, len(pos)))).astype(int))
    return {pos[i] for i in pick}
