"""Extending the benchmark by writing one registered class: a calibrated threshold strategy
and a metric column, registered here as a third-party package would, run through the real
runner; the ranking's direction from metric metadata; the stages on their own."""
from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest

from xaiseg.benchmark import run
from xaiseg.benchmark.report import detection_line, rank, table
from xaiseg.benchmark.scores_pass import Curves, calibrate_thresholds
from xaiseg.benchmark.select import select_slices
from xaiseg.errors import ConfigError, DataError
from xaiseg.metrics import DICE, HD95, Metric
from xaiseg.registry import metrics as metric_registry
from xaiseg.registry import thresholds as threshold_registry
from xaiseg.thresholds import OtsuThreshold, ThresholdStrategy, parse_threshold

from .benchmark_helpers import make_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory, "extend-assets")


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class FoldIndexThreshold(ThresholdStrategy):
    """A third-party calibrated strategy on its own grid: fold f gets grid[f + 2]; it records
    what the runner handed it."""

    name = "fold-index"
    calibrated = True
    grid = np.round(np.arange(1, 10) * 0.1, 10)  # 0.1 … 0.9, not the built-in grid
    calls: list = []

    @property
    def spec(self) -> str:
        return "fold-index"

    def calibrate(self, curves, fold_of, k):
        self.calls.append((np.array(curves), np.array(fold_of), k))
        return [{"fold": f, "threshold": float(self.grid[f + 2])} for f in range(k)]


def test_a_registered_calibrated_strategy_runs_without_touching_the_runner(assets, tmp_path):
    data, ckpt = assets
    FoldIndexThreshold.calls = []
    threshold_registry.register("fold-index", lambda arg: FoldIndexThreshold())
    try:
        res = run(data=data, checkpoint=ckpt, methods=["swin-sam"], threshold="fold-index", folds=3,
                  out=tmp_path / "o", figures=False, progress=False, keep_cache=True)
    finally:
        threshold_registry.unregister("fold-index")
    rows = _rows(res.paths["slices_csv"])
    pos = [r for r in rows if r["role"] == "positive"]
    (curves, fold_of, k), = FoldIndexThreshold.calls
    assert k == 3 and curves.shape == (len(pos), 9) and sorted(fold_of) == sorted(int(r["fold"]) for r in pos)
    for r in rows:  # every slice scored with its fold's threshold
        assert float(r["threshold"]) == pytest.approx(0.1 * (int(r["fold"]) + 3))
    # the curves were sampled at the strategy's grid: each slice's Dice at its threshold (scored
    # from the binary mask) is its curve's value there (from the sorted-values curve code)
    by_fold = {f: [float(r["dice"]) for r in pos if int(r["fold"]) == f] for f in range(3)}
    for f in range(3):
        assert sorted(curves[fold_of == f, f + 2]) == pytest.approx(sorted(by_fold[f]))
    assert [t["threshold"] for t in res.summary["methods"]["swin-sam"]["thresholds"]] == pytest.approx([0.3, 0.4, 0.5])


def _lesion_max(saliency, gt, **_):
    return float(np.asarray(saliency)[np.asarray(gt, bool)].max())


def test_a_registered_metric_becomes_a_column_of_every_output(assets, tmp_path):
    data, ckpt = assets
    extra = Metric("lesion_max", _lesion_max, thresholded=False, label="max in lesion", decimals=2)
    metric_registry.register("lesion_max", extra)
    try:
        res = run(data=data, checkpoint=ckpt, methods=["swin-sam"], threshold="otsu", positives_only=True,
                  out=tmp_path / "o", figures=False, progress=False)
        text = res.table()
    finally:
        metric_registry.unregister("lesion_max")
    values = [float(r["lesion_max"]) for r in _rows(res.paths["slices_csv"])]
    assert all(0.0 <= v <= 1.0 for v in values)
    row = _rows(res.paths["summary_csv"])[0]
    assert float(row["lesion_max_mean"]) == pytest.approx(np.mean(values))
    head, _rule, line = text.splitlines()[:3]
    assert head.split("  ")[-2].strip() == "max in lesion"
    assert f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}" in line


def _entries(**means):
    return {m: {"metrics": {k: {"mean": v} for k, v in vals.items()}} for m, vals in means.items()}


def test_the_ranking_follows_the_metric_direction():
    e = _entries(a={"dice": 0.2, "hd95": 10.0}, b={"dice": 0.5, "hd95": 30.0}, c={"dice": np.nan, "hd95": np.nan},
                 d={"dice": 0.5, "hd95": 5.0})
    assert rank(e, list(e), [DICE, HD95]) == ["b", "d", "a", "c"]  # Dice: higher first, ties by name, NaN last
    assert rank(e, list(e), [DICE, HD95], by="hd95") == ["d", "a", "b", "c"]  # HD95 (mm): lower first
    flipped = Metric("dice", lambda **_: 0.0, thresholded=True, higher_is_better=False)
    assert rank(e, list(e), [flipped]) == ["a", "b", "d", "c"]
    assert rank(e, list(e), []) == ["a", "b", "c", "d"]


def test_a_metric_left_out_of_the_table_is_not_a_column():
    stats = {"mean": 0.5, "std": 0.1, "sem": 0.05, "n": 4, "n_undefined": 0}
    hidden = Metric("dice", lambda **_: 0.0, thresholded=True, in_table=False)
    summary = {"ranking": ["m"], "methods": {"m": {"metrics": {"dice": stats}, "thresholds": []}}}
    assert table(summary, [DICE]).splitlines()[0].split() == ["method", "Dice", "thr"]
    assert table(summary, [hidden]).splitlines()[0].split() == ["method", "thr"]


def test_detection_auc_on_one_class_says_why_it_is_undefined():
    pos = {"auc": np.nan, "accuracy": 0.75, "sensitivity": 0.75, "specificity": np.nan, "f1": 0.857, "n": 8,
           "n_positive": 8}
    text = detection_line(pos)
    assert "AUC nan" not in text and "AUC undefined" in text and "specificity undefined" in text
    assert "every scored slice is hemorrhage-positive" in text and "--positives-only" in text
    neg = dict(pos, n_positive=0, sensitivity=np.nan)
    assert "every scored slice is hemorrhage-negative" in detection_line(neg)
    both = dict(pos, auc=0.9, specificity=0.5, n_positive=4)
    assert "undefined" not in detection_line(both)


def _records(positive_subjects: int, subjects: int = 4):
    return [SimpleNamespace(subject=f"s{s}", slice=i, labels=(0, 0, 0, 0, 0, float(s < positive_subjects and i == 0)))
            for s in range(subjects) for i in range(3)]


def test_select_stage_deals_folds_once_and_only_a_calibrated_strategy_needs_them():
    kw = dict(positives_only=False, limit=None, negative_ratio=None, batch_size=5, folds=3, seed=0)
    sel = select_slices(_records(3), strategy=parse_threshold("grid"), **kw)
    assert sel.k == 3 and sorted(set(sel.fold_of_subject.values())) == [0, 1, 2]
    assert [len(b) for b in sel.batches] == [5, 5, 2] and sel.batch_of[11] == 2
    few = _records(1)
    with pytest.raises(ConfigError, match="3 subject-wise folds"):
        select_slices(few, strategy=parse_threshold("grid"), **kw)
    per_map = select_slices(few, strategy=OtsuThreshold(), **kw)
    assert set(per_map.fold_of_subject.values()) == {0}


def test_thresholds_stage_on_its_own():
    grid = parse_threshold("grid:0.25")  # 0.25, 0.5, 0.75
    curves = Curves({"m": [np.array([0.1, 0.9, 0.2]), np.array([0.8, 0.1, 0.0])]}, {"m": [0, 1]})
    out = calibrate_thresholds(grid, curves, 2)["m"]
    assert [t["threshold"] for t in out] == [0.25, 0.5]  # each fold gets the other fold's best
    assert calibrate_thresholds(OtsuThreshold(), curves, 2) == {}
    with pytest.raises(DataError, match="grid thresholds need hemorrhage-positive slices"):
        calibrate_thresholds(grid, Curves({"m": []}, {"m": []}), 2)


class _UnknownLabels:
    """An open data set whose listed slices have an unknown (NaN) ``any`` label."""

    def __init__(self, ds, unknown):
        import dataclasses

        self.ds = ds
        nan = (float("nan"),) * len(ds.records[0].labels)
        self.records = [dataclasses.replace(r, labels=nan) if i in unknown else r for i, r in enumerate(ds.records)]

    def __getitem__(self, i):
        return self.ds[i]


def test_detection_leaves_out_slices_with_an_unknown_label(assets, tmp_path):
    from sklearn.metrics import roc_auc_score

    from xaiseg.data import open_dataset

    data, ckpt = assets
    ds = open_dataset(data, "physionet")
    negatives = [i for i, r in enumerate(ds.records) if not r.any][:3]
    res = run(data=data, dataset=_UnknownLabels(ds, set(negatives)), checkpoint=ckpt, methods=["swin-sam"],
              threshold="otsu", out=tmp_path / "o", figures=False, progress=False)
    rows = _rows(res.paths["slices_csv"])
    assert [r["any"] for r in rows if int(r["slice_id"]) in negatives] == ["", "", ""]
    known = [r for r in rows if r["any"] != ""]
    det = res.summary["detection"]
    assert det["n"] == len(rows) - 3 == len(known)
    assert det["auc"] == pytest.approx(roc_auc_score([int(r["any"]) for r in known], [float(r["prob"]) for r in known]))
