"""benchmarks/weak_vs_full.py: the regime of each row, its mean Dice over positive slices and a
subject-bootstrap interval, checked against values written here."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from .benchmark_helpers import benchmark_script


def _script():
    return benchmark_script("weak_vs_full")


def _write(run: Path, rows: list[dict]) -> Path:
    run.mkdir()
    cols = ["checkpoint", "method", "subject", "role", "prob", "dice"]
    with open(run / "slices.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        w.writerows(rows)
    return run


def test_rows_regimes_means_and_intervals(tmp_path):
    mod = _script()
    rng = np.random.default_rng(0)
    rows, want = [], {}
    for ckpt, method, prob in (("binary", "hgi-sam", "0.9"), ("subtypes", "hgi-sam", "0.8"), ("", "unet", ""),
                               ("binary", "centre-prior", "0.9")):
        vals = []
        for s in range(6):
            for _ in range(s % 3 + 1):
                d = float(rng.uniform())
                vals.append(d)
                rows.append({"checkpoint": ckpt, "method": method, "subject": f"{s:03d}", "role": "positive",
                             "prob": prob, "dice": d})
        rows.append({"checkpoint": ckpt, "method": method, "subject": "009", "role": "negative", "prob": prob, "dice": ""})
        want[f"{ckpt}/{method}" if ckpt else method] = float(np.mean(vals))
    table = mod.rows([_write(tmp_path / "run", rows)], n_boot=500, seed=1)
    got = {r["row"]: r for r in table}
    assert set(got) == set(want)
    for label, mean in want.items():
        r = got[label]
        assert r["dice"] == pytest.approx(mean) and r["slices"] == 12 and r["subjects"] == 6
        assert r["lo"] < r["dice"] < r["hi"]
    assert got["unet"]["regime"] == "full (segmenter)" and got["binary/hgi-sam"]["regime"] == "weak (binary)"
    assert got["binary/centre-prior"]["regime"] == "floor (no model)"


def test_one_subject_has_no_spread(tmp_path):
    mod = _script()
    mean, lo, hi = mod.subject_bootstrap({"001": [0.2, 0.4]}, n_boot=100, seed=0)
    assert mean == lo == hi == pytest.approx(0.3)
    # two subjects of unequal size: the bootstrap means are the pooled slice means of the draws
    mean, lo, hi = mod.subject_bootstrap({"001": [0.0], "002": [1.0, 1.0, 1.0]}, n_boot=4000, seed=0)
    assert mean == pytest.approx(0.75) and lo == pytest.approx(0.0) and hi == pytest.approx(1.0)


def test_paired_difference_is_the_mean_of_the_slice_differences(tmp_path):
    mod = _script()
    rows = []
    diffs = []
    for s in range(4):
        for k in range(2):
            a, b = 0.1 * s + 0.05 * k, 0.3 - 0.02 * s
            diffs.append(a - b)
            rows += [{"checkpoint": "x", "method": "m", "subject": f"{s}", "role": "positive", "prob": "0.5", "dice": a},
                     {"checkpoint": "y", "method": "m", "subject": f"{s}", "role": "positive", "prob": "0.5", "dice": b}]
    run = _write(tmp_path / "run", rows)
    mean, lo, hi, n = mod.paired_difference(run, "x/m", "y/m", n_boot=500, seed=0)
    assert n == 8 and mean == pytest.approx(np.mean(diffs)) and lo <= mean <= hi
