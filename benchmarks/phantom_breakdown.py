"""Where a classifier loses its detection AUC on a phantom written by ``xaiseg phantom``.

    python benchmarks/phantom_breakdown.py --checkpoint DIR --data PHANTOM [--top 10] [--json OUT]

Scores every written slice with the checkpoint (its own preprocessing, as ``xaiseg train``
validates), then prints:

- the AUC over all slices, and within the subjects exported as 8-bit windowed images
  (``window8`` in phantom.json) and within the others;
- groups of positive slices, each ranked against *all* negatives (the AUC of the group's
  positives plus every negative): by lesion area on the slice (mm², the writer's per-slice
  lesion pixels in phantom.json and the pixel spacing), by subtype (a slice with two subtypes counts in both), by level in the head;
- the negatives ranked highest, with their subject's acquisition.

Why: one validation AUC does not say whether small lesions, one subtype, the 8-bit exports or
bright mimics on negatives cost it (docs/training.md, runs d1-d19).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

AREA_BANDS_MM2 = (0.0, 50.0, 200.0, 600.0, float("inf"))
LEVEL_BANDS = (0.0, 0.25, 0.5, 0.75, 1.0 + 1e-9)  # slice index / slices per head: skull base to vertex


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a checkpoint directory of `xaiseg train`")
    ap.add_argument("--data", required=True, help="a folder written by `xaiseg phantom` (holds phantom.json)")
    ap.add_argument("--top", type=int, default=10, help="how many of the highest-ranked negatives to list")
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", help="also write the figures here")
    return ap.parse_args()


def slice_table(data: str | Path, probabilities: np.ndarray, records) -> list[dict]:
    """One row per scored slice: subject, level, label, subtypes, lesion area (mm²), window8, P."""
    from xaiseg.data.constants import SUBTYPES

    meta = json.loads((Path(data) / "phantom.json").read_text())
    subjects = {int(s["PatientNumber"]): s for s in meta["subject_list"]}
    n = int(meta["slices_per_subject"])
    rows = []
    for r, p in zip(records, probabilities):
        s = subjects[int(r.subject)]
        a = s["lesion_px_per_slice"][int(r.slice_index)]
        rows.append({"subject": int(r.subject), "slice_index": int(r.slice_index), "level": r.slice_index / max(1, n - 1),
                     "positive": bool(r.labels[-1] > 0.5),
                     "subtypes": [t for t, v in zip(SUBTYPES, r.labels[:-1]) if v > 0.5],
                     "area_mm2": float(a) * float(s["pixel_mm"]) ** 2, "window8": s["acquisition"]["window8"] is not None,
                     "p": float(p)})
    return rows


def _auc(rows: list[dict]) -> float:
    from xaiseg.metrics.auc import mann_whitney_auc

    return mann_whitney_auc(np.array([r["positive"] for r in rows], float), np.array([r["p"] for r in rows]))


def _against_negatives(rows: list[dict], keep) -> dict:
    """AUC of the positives ``keep`` selects against every negative, and how many there are."""
    pos = [r for r in rows if r["positive"] and keep(r)]
    neg = [r for r in rows if not r["positive"]]
    return {"positives": len(pos), "auc": _auc(pos + neg) if pos and neg else float("nan")}


def breakdown(rows: list[dict], top: int = 10) -> dict:
    """The figures the module docstring lists, from :func:`slice_table` rows."""
    from xaiseg.data.constants import SUBTYPES

    def band(lo, hi, key):
        return lambda r: lo <= r[key] < hi

    areas = AREA_BANDS_MM2
    levels = LEVEL_BANDS
    return {
        "all": {"slices": len(rows), "positives": sum(r["positive"] for r in rows), "auc": _auc(rows)},
        "window8": {"subjects": sorted({r["subject"] for r in rows if r["window8"]}),
                    "auc": _auc([r for r in rows if r["window8"]])},
        "other": {"auc": _auc([r for r in rows if not r["window8"]])},
        "by_area_mm2": {f"{lo:g}-{hi:g}": _against_negatives(rows, band(lo, hi, "area_mm2")) for lo, hi in zip(areas, areas[1:])},
        "by_subtype": {t: _against_negatives(rows, lambda r, t=t: t in r["subtypes"]) for t in SUBTYPES},
        "by_level": {f"{lo:.2f}-{min(hi, 1.0):.2f}": _against_negatives(rows, band(lo, hi, "level")) for lo, hi in zip(levels, levels[1:])},
        "top_negatives": sorted((r for r in rows if not r["positive"]), key=lambda r: -r["p"])[:top],
    }


def score(checkpoint: str, data: str, device: str | None = None) -> list[dict]:
    from xaiseg import load_model
    from xaiseg.data import open_dataset
    from xaiseg.training.evaluation import labelled_probabilities

    loaded = load_model(checkpoint, device=device)
    ds = open_dataset(data, layout="physionet")
    idx, _, probs = labelled_probabilities(loaded, ds, progress=False)
    return slice_table(data, probs, [ds.records[i] for i in idx])


def _print(f: dict) -> None:
    a = f["all"]
    print(f"all slices: AUC {a['auc']:.3f} ({a['slices']} slices, {a['positives']} positive)")
    w8 = f["window8"]
    print(f"8-bit windowed exports (subjects {w8['subjects']}): AUC {w8['auc']:.3f}; the other subjects: {f['other']['auc']:.3f}"
          if w8["subjects"] else "no subject was exported as an 8-bit windowed image")
    for title, key in (("lesion area on the slice (mm²)", "by_area_mm2"), ("subtype", "by_subtype"),
                       ("level (0 skull base, 1 vertex)", "by_level")):
        print(f"positives by {title}, each group against all negatives:")
        for name, g in f[key].items():
            print(f"  {name:>18}: {g['positives']:4d} positives, AUC {g['auc']:.3f}")
    print("negatives ranked highest:")
    for r in f["top_negatives"]:
        print(f"  subject {r['subject']:3d} slice {r['slice_index']:3d} (level {r['level']:.2f})  P {r['p']:.3f}"
              f"{'  8-bit export' if r['window8'] else ''}")


def main() -> None:
    from xaiseg.errors import XaisegError
    from xaiseg.training.checkpoint import jsonable  # NaN (an empty group) as null

    a = _args()
    if not (Path(a.data) / "phantom.json").is_file():
        raise SystemExit(f"{a.data!r} holds no phantom.json: pass a folder written by `xaiseg phantom`")
    try:
        figures = breakdown(score(a.checkpoint, a.data, a.device), a.top)
    except XaisegError as exc:
        raise SystemExit(str(exc).splitlines()[0]) from None
    _print(figures)
    if a.json:
        Path(a.json).write_text(json.dumps(jsonable(figures), indent=1, allow_nan=False))


if __name__ == "__main__":
    main()
