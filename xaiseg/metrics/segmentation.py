"""Per-slice scores of an attribution map against a ground-truth mask (docs/design.md §3).

Every function takes 2-D numpy arrays: ``saliency`` float in [0, 1], ``pred`` / ``gt`` boolean
masks of the same shape; ``spacing`` is the (row_mm, col_mm) pixel size of that grid.

Conventions (chosen once, stated here, tested):

* Dice and IoU of an empty prediction against a non-empty mask are 0; of two empty masks 1.
* HD95 follows MONAI's ``compute_hausdorff_distance(percentile=95)``: surfaces are the mask
  pixels removed by one binary erosion (4-connectivity), distances are Euclidean in mm, and the
  result is the larger of the two *directed* 95th percentiles (pred→gt and gt→pred). It is NaN
  when either mask is empty (no surface to measure); reports give its mean over the slices where
  it is defined together with that count, so an empty prediction is never silently rewarded —
  its Dice of 0 is in the Dice column.
* Pixel AUROC is the Mann–Whitney statistic with ties counted one half (== sklearn's
  ``roc_auc_score``), over the pixels of ``region`` (the brain mask when one is used, else the
  whole slice); NaN if the region holds only one class.
* Relevance mass is sum(saliency inside gt) / sum(saliency); 0 for an all-zero map.
* Pointing game: 1 if the map's maximum lies inside the mask. Tied maxima are broken uniformly
  at random *in expectation*: the score is the fraction of maximal pixels inside the mask, so a
  constant map scores the mask's area fraction, not 1.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .ranking_fast import auc_from_scores, comparable, floor_in

Spacing = tuple[float, float]


def _check(*arrays: np.ndarray) -> None:
    shape = arrays[0].shape
    if len(shape) != 2:
        raise ValueError(f"expected 2-D arrays, got shape {shape}")
    for a in arrays[1:]:
        if a.shape != shape:
            raise ValueError(f"shape mismatch: {a.shape} vs {shape}")


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """2|P∩G| / (|P| + |G|); 1 when both are empty."""
    _check(pred, gt)
    p, g = pred.astype(bool), gt.astype(bool)
    # count_nonzero: the same integers as .sum(), ~8× faster on a 512² boolean mask
    denom = int(np.count_nonzero(p)) + int(np.count_nonzero(g))
    return 1.0 if denom == 0 else 2.0 * int(np.count_nonzero(p & g)) / denom


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P∩G| / |P∪G|; 1 when both are empty."""
    _check(pred, gt)
    p, g = pred.astype(bool), gt.astype(bool)
    union = int(np.count_nonzero(p | g))
    return 1.0 if union == 0 else int(np.count_nonzero(p & g)) / union


def surface(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: the mask minus its 4-connected erosion (MONAI's ``get_mask_edges``)."""
    m = mask.astype(bool)
    return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(2, 1))


def _distances_at(sa: np.ndarray, sb: np.ndarray, spacing: Spacing) -> np.ndarray:
    """Distance (mm) from every pixel of surface ``sa`` to the nearest pixel of surface ``sb``."""
    # EDT of the complement of b's surface = distance of every pixel to b's surface, anisotropic.
    return ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]


def directed_surface_distances(a: np.ndarray, b: np.ndarray, spacing: Spacing) -> np.ndarray:
    """Distance (mm) from every surface pixel of ``a`` to the nearest surface pixel of ``b``."""
    return _distances_at(surface(a), surface(b), spacing)


def _window(*masks: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the union of the (non-empty) masks.

    HD95 computed on this window equals the full-slice value exactly. Every surface pixel lies
    in the box, so each nearest-surface search finds the same pixel at the same integer offset
    (scipy's feature transform and distances depend on coordinate differences only; the float
    is the same to the last bit, tests/test_metrics_fast.py). The erosion sees the same
    neighbours: a neighbour outside the box is background in the slice, and the erosion counts
    outside-the-array as background too (no margin is needed)."""
    union = np.logical_or.reduce(masks)
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Spacing = (1.0, 1.0)) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (max of both directed percentiles)."""
    _check(pred, gt)
    if not pred.any() or not gt.any():
        return float("nan")
    win = _window(pred.astype(bool), gt.astype(bool))  # the only region that can matter
    sp, sg = surface(pred[win]), surface(gt[win])
    d_pg = _distances_at(sp, sg, spacing)
    d_gp = _distances_at(sg, sp, spacing)
    return float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)))


def pixel_auroc(saliency: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> float:
    """Threshold-free separation of mask from non-mask pixels by the map (ties count ½)."""
    _check(saliency, gt)
    g = gt.astype(bool)
    s = comparable(saliency)  # a float32 map stays float32: the same ranks, no float64 copy
    if region is not None:
        _check(saliency, region)
        r = region.astype(bool) | g  # a mask pixel outside the region still counts as positive
        s, g = s[r], g[r]
    else:
        s, g = s.ravel(), g.ravel()
    return auc_from_scores(s[g], s[~g])  # a mask has no unknown labels to drop


def relevance_mass(saliency: np.ndarray, gt: np.ndarray) -> float:
    """Share of the map's total relevance that falls inside the mask."""
    _check(saliency, gt)
    s = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    total = s.sum()
    return 0.0 if total <= 0 else float(s[gt.astype(bool)].sum() / total)


def pointing_game(saliency: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of the map's maximal pixels that lie inside the mask (1 = hit, 0 = miss)."""
    _check(saliency, gt)
    s = np.asarray(saliency)
    top = s == s.max()
    return float(gt.astype(bool)[top].mean())


def binarize(saliency: np.ndarray, threshold: float) -> np.ndarray:
    """The mask ``saliency > threshold``, compared in float64 so that every code path (per-slice
    masks, Dice-vs-threshold curves) draws the line at exactly the same place. A float16/float32
    map is compared in its own precision against the threshold's floor there: the same answers
    (ranking_fast), without a float64 copy of the map."""
    s = comparable(saliency)
    return s > floor_in(s.dtype, np.float64(threshold))


def predicted_area(pred: np.ndarray, spacing: Spacing = (1.0, 1.0)) -> tuple[int, float]:
    """Predicted-positive area of a mask as (pixels, mm²) — the false-positive load on a
    hemorrhage-negative slice."""
    n = int(np.count_nonzero(pred))
    return n, float(n * spacing[0] * spacing[1])


def dice_curve(saliency: np.ndarray, gt: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Dice of ``saliency > t`` for every t in ``thresholds`` (one pass over sorted values)."""
    _check(saliency, gt)
    s = comparable(saliency).ravel()  # float32 maps stay float32: the same comparisons, faster sort
    g = gt.astype(bool).ravel()
    n_gt = int(np.count_nonzero(g))
    order = np.sort(s)
    order_in = np.sort(s[g])
    t = floor_in(s.dtype, thresholds)  # v > t ⇔ v > t's floor in the map's dtype
    # count of values > t = n - (number of values <= t)
    pred_pos = s.size - np.searchsorted(order, t, side="right")
    tp = n_gt - np.searchsorted(order_in, t, side="right")
    denom = pred_pos + n_gt
    return np.where(denom == 0, 1.0, 2.0 * tp / np.maximum(denom, 1))
