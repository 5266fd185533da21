"""Aggregate per-slice rows into the summary (pandas-free dicts), write summary.csv / .json and
the breakdown tables, and format the terminal table."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..output.atomic import atomic_path, write_json
from ..data.constants import SUBTYPES
from ..metrics import Metric, detection_metrics
from .checkpoints import split_label
from .store import fmt

RANK_METRIC = "dice"  # what the summary ranks by; its direction comes from the Metric
TIMING_COLUMNS = ("wall_time_s",)  # the summary's only cells that may differ between two equal runs


def summary_numbers(csv_text: str) -> list[dict[str, str]]:
    """The rows of a summary.csv's text without its timing columns: what two runs that computed
    the same thing agree on, cell by cell."""
    import io

    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(io.StringIO(csv_text))]


def stats(values: Sequence[float]) -> dict[str, float | int]:
    """mean, sample std (ddof 1), sem = std/√n over the defined (non-NaN) values; n counts them
    and n_undefined the NaNs left out (e.g. HD95 of an empty prediction)."""
    v = np.asarray([x for x in values], dtype=np.float64)
    ok = v[~np.isnan(v)]
    n = int(ok.size)
    mean = float(ok.mean()) if n else float("nan")
    std = float(ok.std(ddof=1)) if n > 1 else float("nan")
    sem = std / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "sem": sem, "n": n, "n_undefined": int(v.size - n)}


def _f(row: dict, key: str) -> float:
    v = row.get(key, "")
    return float(v) if v not in ("", None) else float("nan")


def summarize(
    rows: list[dict[str, str]],
    methods: Sequence[str],
    metrics: Sequence[Metric],
    thresholds: dict[str, list[dict]],
    wall_time: dict[str, float],
    checkpoint_of: dict[str, str] | None = None,
    segmenter_rows: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The whole summary: per row (overall, per subtype, per subject), detection, ranking.
    ``checkpoint_of`` (several classifiers): each row label's classifier name; then every
    entry names its ``checkpoint`` and detection is per classifier (``detection_by_checkpoint``)."""
    names = [m.name for m in metrics]
    out: dict[str, Any] = {"methods": {}, "metrics": names}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        pos = [r for r in mine if r["role"] == "positive"]
        neg = [r for r in mine if r["role"] == "negative"]
        entry: dict[str, Any] = {
            "n_positive": len(pos),
            "n_negative": len(neg),
            "n_unmasked_positive": sum(r["role"] == "unmasked" for r in mine),
            "metrics": {k: stats([_f(r, k) for r in pos]) for k in names},
            "empty_prediction_rate": stats([float(_f(r, "pred_area_px") == 0) for r in pos])["mean"],
            "negative_pred_area_px": stats([_f(r, "pred_area_px") for r in neg]),
            "negative_pred_area_mm2": stats([_f(r, "pred_area_mm2") for r in neg]),
            "thresholds": thresholds.get(method, []),
            # the thresholds actually applied to positive slices (per map or per fold)
            "threshold_applied": stats([_f(r, "threshold") for r in pos]),
            "wall_time_s": wall_time.get(method, float("nan")),
        }
        entry["per_subtype"] = {
            st: {k: stats([_f(r, k) for r in pos if r.get(st) == "1"]) for k in names}
            for st in SUBTYPES
            if any(r.get(st) == "1" for r in pos)
        }
        subjects = sorted({r["subject"] for r in pos})
        entry["per_subject"] = {s: {k: stats([_f(r, k) for r in pos if r["subject"] == s]) for k in names} for s in subjects}
        if checkpoint_of:
            entry["checkpoint"] = checkpoint_of.get(method, "")
        if method in segmenter_rows:
            entry["segmenter"] = True
        out["methods"][method] = entry
    classified = [m for m in methods if m not in segmenter_rows]  # rows with the classifiers' probabilities
    if checkpoint_of:
        ck_names = list(dict.fromkeys(checkpoint_of[m] for m in classified))
        out["checkpoints"] = ck_names
        out["detection_by_checkpoint"] = {
            n: _detection(rows, next(m for m in classified if checkpoint_of[m] == n)) for n in ck_names}
    else:
        out["detection"] = _detection(rows, classified[0]) if classified else {}
    out["ranking"] = rank(out["methods"], methods, metrics)
    return out


def _detection(rows: list[dict[str, str]], method: str) -> dict[str, Any]:
    """A classifier's detection metrics from the rows of one of its methods: one row per slice
    (the probability does not depend on the method). An unknown label is an empty cell:
    detection leaves that slice out (metrics/auc.py)."""
    mine = [r for r in rows if r["method"] == method]
    if not mine:
        return {}
    return detection_metrics(np.array([_f(r, "any") for r in mine]), np.array([float(r["prob"]) for r in mine]))


def rank(entries: dict[str, Any], methods: Sequence[str], metrics: Sequence[Metric], by: str = RANK_METRIC) -> list[str]:
    """Methods best first by their mean of metric ``by``, in its direction (``higher_is_better``);
    undefined means last; ties by name. Without that metric: by name."""
    metric = next((m for m in metrics if m.name == by), None)
    if metric is None:
        return sorted(methods)
    sign = -1.0 if metric.higher_is_better else 1.0

    def key(method: str) -> tuple[bool, float, str]:
        mean = entries[method]["metrics"][by]["mean"]
        return (math.isnan(mean), 0.0 if math.isnan(mean) else sign * mean, method)

    return sorted(methods, key=key)


def write_summary(summary: dict[str, Any], out: Path, threshold_spec: str) -> dict[str, Path]:
    """summary.json (everything), summary.csv (one row per method), summary_by_subtype.csv and
    summary_by_subject.csv (one row per method × group)."""
    out = Path(out)
    paths = {"summary_json": out / "summary.json", "summary_csv": out / "summary.csv",
             "summary_by_subtype_csv": out / "summary_by_subtype.csv",
             "summary_by_subject_csv": out / "summary_by_subject.csv"}
    write_json(paths["summary_json"], _clean(summary))
    names = summary["metrics"]
    multi = "detection_by_checkpoint" in summary
    det_keys = ["auc", "accuracy", "sensitivity", "specificity", "precision", "f1"]
    cols = ["rank", *["checkpoint"] * multi, "method", "threshold", "fold_thresholds", "n_positive", "n_negative"]
    for k in names:
        cols += [f"{k}_mean", f"{k}_std", f"{k}_sem", f"{k}_n"]
    cols += ["empty_prediction_rate", "negative_pred_area_px_mean", "negative_pred_area_mm2_mean", "wall_time_s"]
    cols += [f"detection_{k}" for k in det_keys]
    rows = []
    for rank, method in enumerate(summary["ranking"], 1):
        e = summary["methods"][method]
        if e.get("segmenter"):
            det = {}
        else:
            det = summary["detection_by_checkpoint"][e["checkpoint"]] if multi else summary.get("detection", {})
        row: dict[str, Any] = {
            "rank": rank, **_label_cells(method, multi), "threshold": threshold_spec,
            "fold_thresholds": ";".join(fmt(t["threshold"]) for t in e["thresholds"]),
            "n_positive": e["n_positive"], "n_negative": e["n_negative"],
            "empty_prediction_rate": e["empty_prediction_rate"],
            "negative_pred_area_px_mean": e["negative_pred_area_px"]["mean"],
            "negative_pred_area_mm2_mean": e["negative_pred_area_mm2"]["mean"],
            "wall_time_s": e["wall_time_s"],
        }
        for k in names:
            for s in ("mean", "std", "sem", "n"):
                row[f"{k}_{s}"] = e["metrics"][k][s]
        for k in det_keys:
            row[f"detection_{k}"] = det.get(k)
        rows.append(row)
    _write_csv(paths["summary_csv"], cols, rows)
    for group, path in (("per_subtype", "summary_by_subtype_csv"), ("per_subject", "summary_by_subject_csv")):
        label = "subtype" if group == "per_subtype" else "subject"
        gcols = [*["checkpoint"] * multi, "method", label] + [f"{k}_{s}" for k in names for s in ("mean", "std", "sem", "n")]
        grows = []
        for method in summary["ranking"]:
            for g, per in summary["methods"][method][group].items():
                r = {**_label_cells(method, multi), label: g}
                for k in names:
                    for s in ("mean", "std", "sem", "n"):
                        r[f"{k}_{s}"] = per[k][s]
                grows.append(r)
        _write_csv(paths[path], gcols, grows)
    return paths


def _label_cells(label: str, multi: bool) -> dict[str, str]:
    """A row label as CSV cells: ``method``, plus ``checkpoint`` with several classifiers."""
    if not multi:
        return {"method": label}
    name, method = split_label(label, True)
    return {"checkpoint": name, "method": method}


def _write_csv(path: Path, cols: list[str], rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, cols, lineterminator="\n")
        w.writeheader()
        w.writerows([{k: fmt(r.get(k)) for k in cols} for r in rows])


def _clean(x: Any) -> Any:
    """JSON without NaN (not valid JSON): NaN → null."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _cell(metric: Metric, s: dict) -> str:
    """One table cell from a metric's stats, formatted by its metadata; ``(n=…)`` says over how
    many slices the mean was taken when some were undefined (HD95 of an empty prediction)."""
    d = metric.decimals
    if s["n"] == 0 or math.isnan(s["mean"]):
        text = "—"
    elif metric.spread and not math.isnan(s["std"]):
        text = f"{s['mean']:.{d}f} ± {s['std']:.{d}f}"
    else:
        text = f"{s['mean']:.{d}f}"
    return text + (f" (n={s['n']})" if s["n_undefined"] else "")


def _table_metrics(summary: dict[str, Any]) -> list[Metric]:
    """The summary's metrics as registered now (a summary read back from disk has only names)."""
    from ..registry import UnknownNameError, get_metric

    out = []
    for name in summary.get("metrics", []):
        try:
            out.append(get_metric(name))
        except (UnknownNameError, ImportError):
            continue  # a metric that is gone keeps its numbers in the CSVs, not a column here
    return out


def table(summary: dict[str, Any], metrics: Sequence[Metric] | None = None) -> str:
    """The terminal table in ranking order: one column per metric with ``in_table`` (header and
    format from its metadata), the thresholds, then the classifier's detection line."""
    cols = [m for m in (_table_metrics(summary) if metrics is None else metrics) if m.in_table]
    head = ("method", *(m.header for m in cols), "thr")
    lines = [head]
    for name in summary["ranking"]:
        e = summary["methods"][name]
        thr = ",".join(f"{t['threshold']:.2f}" for t in e["thresholds"]) or "per map"
        lines.append((name, *(_cell(m, e["metrics"][m.name]) if m.name in e["metrics"] else "—" for m in cols), thr))
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    if "detection_by_checkpoint" in summary:  # one line per classifier
        text += [detection_line(d, name) for name, d in summary["detection_by_checkpoint"].items() if d]
    elif summary.get("detection"):
        text.append(detection_line(summary["detection"]))
    return "\n".join(text)


def detection_line(det: dict[str, Any], name: str | None = None) -> str:
    """The classifier's detection figures (``name``: which one, when a run has several); an
    undefined one (a class missing) says so and why."""
    def v(key: str) -> str:
        x = det.get(key)
        return "undefined" if x is None or math.isnan(x) else f"{x:.3f}"

    who = "classifier" if name is None else f"classifier {name}"
    line = (f"{who} detection: AUC {v('auc')}, accuracy {v('accuracy')}, sensitivity {v('sensitivity')}, "
            f"specificity {v('specificity')}, F1 {v('f1')} ({det['n']} slices, {det['n_positive']} positive)")
    n, n_pos = int(det["n"]), int(det["n_positive"])
    if n and n_pos in (0, n):
        which = "hemorrhage-positive" if n_pos else "hemorrhage-negative"
        other = "negative" if n_pos else "positive"
        line += (f"\ndetection AUC is undefined: every scored slice is {which}, and the AUC ranks {other} "
                 f"slices against them" + (" (drop --positives-only to score negatives)" if n_pos else ""))
    return line
