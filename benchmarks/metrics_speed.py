"""Speed of the per-slice metrics: the previous full-slice implementations against today's.

The previous bodies are copied below (``old_*``: HD95 with distance transforms over the whole
slice, pixel AUROC through scipy's ``rankdata``, the Dice-vs-threshold curve through a float64
sort of the map); tests/test_metrics_fast.py holds today's bodies to them, bit for bit. Both are
run on the same realistic slices — phantom head CT slices with their hemorrhage masks, brain
masks and pixel spacing, and maps made the way the benchmark makes them (a smooth model-grid
map, stored as float16, bilinearly resized to the slice, brain-masked and min–max scaled) — in
one process, interleaved repeat by repeat so background load hits both alike; the figures are
medians. Every new result is checked to be the same float as the old one.

    python benchmarks/metrics_speed.py                  # 24 slices at 512², 5 repeats
    python benchmarks/metrics_speed.py --slices 8 --size 256 --repeats 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.stats import rankdata

from xaiseg.data.constants import SUBTYPES
from xaiseg.data.phantom import render_slice
from xaiseg.metrics import dice_curve, hd95, pixel_auroc

GRID = np.round(np.arange(1, 100) * 0.01, 10)  # the benchmark's default threshold grid


# ------------------------------------------ previous implementations, frozen (the reference)
def old_surface(mask):
    m = mask.astype(bool)
    return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(2, 1))


def old_directed(a, b, spacing):
    sa, sb = old_surface(a), old_surface(b)
    return ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]


def old_hd95(pred, gt, spacing=(1.0, 1.0)):
    if not pred.any() or not gt.any():
        return float("nan")
    d_pg = old_directed(pred, gt, spacing)
    d_gp = old_directed(gt, pred, spacing)
    return float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)))


def old_pixel_auroc(saliency, gt, region=None):
    g = gt.astype(bool)
    s = np.asarray(saliency, dtype=np.float64)
    if region is not None:
        r = region.astype(bool) | g
        s, g = s[r], g[r]
    else:
        s, g = s.ravel(), g.ravel()
    n_pos = int(g.sum())
    n_neg = g.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[g].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def old_dice_curve(saliency, gt, thresholds):
    s = np.asarray(saliency, dtype=np.float64).ravel()
    g = gt.astype(bool).ravel()
    n_gt = int(g.sum())
    order = np.sort(s)
    order_in = np.sort(s[g])
    t = np.asarray(thresholds, dtype=np.float64)
    pred_pos = s.size - np.searchsorted(order, t, side="right")
    tp = n_gt - np.searchsorted(order_in, t, side="right")
    denom = pred_pos + n_gt
    return np.where(denom == 0, 1.0, 2.0 * tp / np.maximum(denom, 1))


# ----------------------------------------------------------------------------- test slices
def _model_grid_map(rng: np.random.Generator, mask: np.ndarray, grid: int) -> torch.Tensor:
    """A smooth (grid, grid) map: blurred noise plus a bump that may or may not hit the lesion."""
    noise = ndimage.gaussian_filter(rng.random((grid, grid)), grid / 24)
    rows, cols = np.nonzero(mask)
    scale = grid / mask.shape[0]
    r0, c0 = rows.mean() * scale + rng.normal(0, grid / 10), cols.mean() * scale + rng.normal(0, grid / 10)
    rr, cc = np.mgrid[:grid, :grid]
    bump = np.exp(-((rr - r0) ** 2 + (cc - c0) ** 2) / (2 * (grid / 16) ** 2))
    m = noise / noise.max() + rng.uniform(0.5, 2.0) * bump
    return torch.from_numpy(m.astype(np.float16).astype(np.float32))  # the float16 cache, as stored


def make_slices(n: int, size: int, seed: int = 0) -> list[dict]:
    """Hemorrhage-positive phantom slices with a benchmark-style map and two thresholded masks."""
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    while len(out) < n:
        sl = render_slice(rng, size=size, z=float(rng.uniform(0.3, 0.7)),
                          subtypes=[SUBTYPES[int(rng.integers(len(SUBTYPES)))]])
        gt, brain = sl.mask.astype(bool), sl.brain.astype(bool)
        if not gt.any():
            continue
        small = _model_grid_map(rng, gt, max(16, size // 4))
        m = F.interpolate(small[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
        m = m * brain
        sal = ((m - m.min()) / (m.max() - m.min())).astype(np.float32)
        for t in (0.3, 0.6):  # a generous and a tight threshold: large and small predicted masks
            out.append({"sal": sal, "gt": gt, "brain": brain, "spacing": sl.spacing, "pred": sal > t})
    return out[:n]


# ---------------------------------------------------------------------------------- timing
CASES: dict[str, tuple[Callable, Callable, Callable]] = {
    # name: (old, new, how to call either on one slice)
    "hd95": (old_hd95, hd95, lambda f, s: f(s["pred"], s["gt"], s["spacing"])),
    "auroc (brain region)": (old_pixel_auroc, pixel_auroc, lambda f, s: f(s["sal"], s["gt"], s["brain"])),
    "dice_curve (99 thresholds)": (old_dice_curve, dice_curve, lambda f, s: f(s["sal"], s["gt"], GRID)),
}


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _time_all(fn: Callable, call: Callable, slices: list[dict]) -> float:
    t0 = time.perf_counter()
    for s in slices:
        call(fn, s)
    return time.perf_counter() - t0


def measure(slices: list[dict], repeats: int) -> list[dict]:
    rows = []
    for name, (old, new, call) in CASES.items():
        mismatches = sum(not _same(call(old, s), call(new, s)) for s in slices)  # also the warm-up
        t_old, t_new = [], []
        for _ in range(repeats):  # interleaved: drift in load or clock hits both alike
            t_old.append(_time_all(old, call, slices))
            t_new.append(_time_all(new, call, slices))
        o, n = statistics.median(t_old), statistics.median(t_new)
        rows.append({"metric": name, "old_ms_per_slice": 1e3 * o / len(slices),
                     "new_ms_per_slice": 1e3 * n / len(slices), "speedup": o / n, "mismatches": mismatches})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=24, help="realistic slices to score (default 24)")
    ap.add_argument("--size", type=int, default=512, help="in-plane size in pixels (default 512)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds, median reported (default 5)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if args.slices < 1 or args.repeats < 1 or args.size < 32:
        print("error: --slices and --repeats must be >= 1 and --size >= 32", file=sys.stderr)
        return 2
    slices = make_slices(args.slices, args.size)
    area = statistics.median(float(s["pred"].mean()) for s in slices)
    print(f"{len(slices)} phantom slices at {args.size}², median predicted area {100 * area:.1f} % of the slice, "
          f"{args.repeats} repeats (median)")
    rows = measure(slices, args.repeats)
    print(f"{'metric':<28}{'old ms/slice':>14}{'new ms/slice':>14}{'speedup':>10}  same result")
    for r in rows:
        same = "yes" if r["mismatches"] == 0 else f"NO ({r['mismatches']} differ)"
        print(f"{r['metric']:<28}{r['old_ms_per_slice']:>14.2f}{r['new_ms_per_slice']:>14.2f}"
              f"{r['speedup']:>9.1f}x  {same}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"slices": len(slices), "size": args.size, "repeats": args.repeats, "rows": rows}, fh, indent=2)
    return 0 if all(r["mismatches"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
