"""The fast HD95, pixel AUROC and Dice-curve bodies equal the implementations they replaced.

References, independent of the code under test:
* the previous full-slice / full-sort implementations, copied verbatim (once, as ``old_*`` in
  benchmarks/metrics_speed.py, which times them against today's): the fast ones must return
  the *same float*, bit for bit (the benchmark's summary.csv must not move by one digit);
* MONAI's ``compute_hausdorff_distance(percentile=95)`` with spacing (float32, so to 1e-6);
* sklearn's ``roc_auc_score``.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from xaiseg.metrics import dice_curve, hd95, pixel_auroc
from xaiseg.metrics.ranking_fast import auc_from_scores


# ------------------------------------------- previous implementations (one frozen copy)
def _load_reference():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "metrics_speed.py"
    spec = importlib.util.spec_from_file_location("_metrics_speed_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_REF = _load_reference()
_hd95_full_slice, _auroc_rank_form, _dice_curve_sorted = _REF.old_hd95, _REF.old_pixel_auroc, _REF.old_dice_curve


# ------------------------------------------------------------------------------ random cases
def _blob(rng, shape, density):
    m = rng.random(shape) < density
    return ndimage.binary_closing(ndimage.binary_dilation(m, iterations=int(rng.integers(0, 3))))


def _mask_pairs():
    """(name, pred, gt, spacing): blobs, one pixel, masks touching every border, full slice,
    disjoint far-apart masks, anisotropic spacings (incl. a 10:1 ratio)."""
    rng = np.random.default_rng(1234)
    cases = []
    for i in range(24):
        shape = (int(rng.integers(8, 70)), int(rng.integers(8, 70)))
        spacing = (float(rng.uniform(0.3, 3.0)), float(rng.uniform(0.3, 3.0)))
        cases.append((f"blobs{i}", _blob(rng, shape, 0.04), _blob(rng, shape, 0.04), spacing))
    one = np.zeros((30, 40), bool)
    one[7, 9] = True
    other = np.zeros_like(one)
    other[22, 31] = True
    cases += [("one-pixel-each", one, other, (0.7, 1.9)), ("one-pixel-same", one, one.copy(), (1.0, 1.0))]
    border = np.zeros((25, 33), bool)
    border[0, :] = border[:, 0] = border[-1, 5:9] = border[10:14, -1] = True
    cases.append(("touching-borders", border, _blob(rng, border.shape, 0.05) | border[::-1, ::-1], (0.5, 2.0)))
    corner = np.zeros((20, 20), bool)
    corner[:3, :4] = True
    cases.append(("corner-vs-opposite-corner", corner, corner[::-1, ::-1].copy(), (1.3, 0.4)))
    full = np.ones((16, 18), bool)
    cases.append(("full-slice", full, _blob(rng, full.shape, 0.1) | one[:16, :18], (1.0, 1.0)))
    far = np.zeros((64, 64), bool)
    far[1:4, 60:63] = True
    near = np.zeros_like(far)
    near[55:62, 2:5] = True
    cases.append(("far-apart-anisotropic", far, near, (0.1, 1.0)))
    return cases


CASES = _mask_pairs()


@pytest.mark.parametrize("name,pred,gt,spacing", CASES, ids=[c[0] for c in CASES])
def test_hd95_window_equals_the_full_slice_function_bit_for_bit(name, pred, gt, spacing):
    assert hd95(pred, gt, spacing) == _hd95_full_slice(pred, gt, spacing)
    assert hd95(gt, pred, spacing) == _hd95_full_slice(gt, pred, spacing)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecation notice, inside it
@pytest.mark.parametrize("name,pred,gt,spacing", CASES, ids=[c[0] for c in CASES])
def test_hd95_matches_monai(name, pred, gt, spacing):
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    ref = monai_metrics.compute_hausdorff_distance(
        torch.from_numpy(pred[None, None].astype(np.float32)), torch.from_numpy(gt[None, None].astype(np.float32)),
        include_background=True, percentile=95, spacing=list(spacing),
    ).item()
    assert hd95(pred, gt, spacing) == pytest.approx(ref, rel=1e-6, abs=1e-6)


def test_hd95_empty_masks_are_nan_like_the_full_slice_function():
    m = np.zeros((12, 12), bool)
    m[3:5, 3:5] = True
    for a, b in [(m, np.zeros_like(m)), (np.zeros_like(m), m), (np.zeros_like(m), np.zeros_like(m))]:
        assert math.isnan(hd95(a, b, (0.5, 2.0))) and math.isnan(_hd95_full_slice(a, b, (0.5, 2.0)))


def test_hd95_window_on_a_realistic_512_slice():
    # a phantom lesion against a thresholded smooth map, with the slice's own anisotropic spacing
    rng = np.random.default_rng(5)
    gt = np.zeros((512, 512), bool)
    gt[200:260, 300:340] = True
    sal = ndimage.gaussian_filter(rng.random((512, 512)), 12)
    pred = sal > np.quantile(sal, 0.97)
    assert hd95(pred, gt, (0.43, 0.61)) == _hd95_full_slice(pred, gt, (0.43, 0.61))


# --------------------------------------------------------------------------------- AUROC
def _tied_map(rng, shape, levels):
    # float32 in [0, 1] with heavy ties: a coarse grid of values plus an exact-zero background
    s = (rng.integers(0, levels, shape) / (levels - 1)).astype(np.float32)
    s[rng.random(shape) < 0.3] = 0.0
    return s


@pytest.mark.parametrize("seed", range(8))
def test_pixel_auroc_equals_the_rank_form_and_sklearn_with_ties(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(5, 90)), int(rng.integers(5, 90)))
    sal = _tied_map(rng, shape, int(rng.choice([2, 3, 17, 1000])))
    gt = rng.random(shape) < rng.choice([0.02, 0.3, 0.8])  # positives few, balanced, and the majority
    region = rng.random(shape) < 0.6
    if gt.all() or not gt.any():
        gt.flat[0] = not gt.flat[0]
    for reg in (None, region):
        fast, ref = pixel_auroc(sal, gt, reg), _auroc_rank_form(sal, gt, reg)
        assert fast == ref  # the same float, not merely close
        r = np.ones(shape, bool) if reg is None else reg | gt
        if 0 < gt[r].sum() < r.sum():
            assert fast == pytest.approx(sk.roc_auc_score(gt[r], sal[r]), rel=1e-12)


def test_pixel_auroc_on_a_realistic_512_map():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    sal = ndimage.gaussian_filter(rng.random((512, 512)), 8).astype(np.float16).astype(np.float32)
    sal = (sal - sal.min()) / (sal.max() - sal.min())
    brain = np.zeros((512, 512), bool)
    brain[60:450, 80:430] = True
    sal[~brain] = 0.0
    gt = np.zeros((512, 512), bool)
    gt[300:340, 150:175] = True
    assert pixel_auroc(sal, gt, brain) == _auroc_rank_form(sal, gt, brain)
    assert pixel_auroc(sal, gt) == _auroc_rank_form(sal, gt)
    assert pixel_auroc(sal, gt) == pytest.approx(sk.roc_auc_score(gt.ravel(), sal.ravel()), rel=1e-12)


def test_auc_from_scores_hand_built_and_degenerate():
    # pairs (p, n): 3>1, 3>2, 3=3 (½), 2>1, 2=2 (½), 2<3 → 4 of 6 pairs
    assert auc_from_scores(np.array([3.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(4 / 6)
    assert auc_from_scores(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0])) == pytest.approx(2 / 6)
    assert auc_from_scores(np.ones(4), np.ones(7)) == 0.5
    assert math.isnan(auc_from_scores(np.array([]), np.array([1.0])))
    assert math.isnan(auc_from_scores(np.array([1.0]), np.array([])))
    assert math.isnan(auc_from_scores(np.array([1.0, np.nan]), np.array([0.0])))  # as the rank form
    s, g = np.array([[0.2, np.nan, 0.7]]), np.array([[True, False, True]])
    assert math.isnan(_auroc_rank_form(s, g)) and math.isnan(pixel_auroc(s, g))


# ---------------------------------------------------------------------------- Dice curve
@pytest.mark.parametrize("seed", range(6))
def test_dice_curve_equals_the_sorting_form_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(4, 80)), int(rng.integers(4, 80)))
    sal = _tied_map(rng, shape, int(rng.choice([2, 11, 101])))
    gt = rng.random(shape) < rng.choice([0.0, 0.05, 0.5])
    grids = [
        np.round(np.arange(1, 100) * 0.01, 10),  # the benchmark's grid; values land exactly on steps
        np.array([0.5, 0.1, 0.5, 0.9, 0.0, 1.0, -1.0]),  # unsorted, duplicated, beyond both ends
        np.linspace(0.0, 1.0, 11),
    ]
    for grid in grids:
        np.testing.assert_array_equal(dice_curve(sal, gt, grid), _dice_curve_sorted(sal, gt, grid))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_dice_curve_other_map_dtypes_equal_the_sorting_form(dtype):
    rng = np.random.default_rng(11)
    sal = _tied_map(rng, (40, 50), 300).astype(dtype)
    gt = rng.random((40, 50)) < 0.1
    grid = np.round(np.arange(1, 100) * 0.01, 10)
    np.testing.assert_array_equal(dice_curve(sal, gt, grid), _dice_curve_sorted(sal, gt, grid))


def test_floor_in_float32_keeps_every_comparison_with_a_float64_threshold():
    from xaiseg.metrics.ranking_fast import floor_in

    rng = np.random.default_rng(2)
    v = np.concatenate([rng.random(2000), [0.0, 1.0, 0.01, 0.5, np.inf, -np.inf, 3.4e38]]).astype(np.float32)
    t = np.concatenate([rng.random(300), np.round(np.arange(1, 100) * 0.01, 10), v[:50].astype(np.float64),
                        [0.0, 1.0, 1e300, -1e300, 3.5e38, -3.5e38, np.inf, -np.inf]])
    f = floor_in(np.dtype(np.float32), t)
    assert f.dtype == np.float32
    # the literal comparison in float64 (float32 → float64 is exact) against the float32 one
    np.testing.assert_array_equal(v.astype(np.float64)[:, None] > t[None, :], v[:, None] > f[None, :])
    assert np.isnan(floor_in(np.dtype(np.float32), np.array([np.nan]))).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_binarize_equals_the_literal_float64_comparison(dtype):
    """binarize compares a float16/float32 map in its own precision: the mask must be the one
    of the literal ``float64(map) > float64(t)`` for every threshold, on the grid and off it."""
    from xaiseg.metrics import binarize

    rng = np.random.default_rng(5)
    sal = _tied_map(rng, (60, 70), 101).astype(dtype)
    sal.flat[:6] = [0.0, 1.0, 0.5, 0.01, np.nextafter(np.float32(0.3), np.float32(1)), 0.3]
    thresholds = [*np.round(np.arange(0, 101) * 0.01, 10), 0.3, float(np.float32(0.3)), -1.0, 2.0, np.nan,
                  *rng.random(20), np.float32(0.7)]
    for t in thresholds:
        np.testing.assert_array_equal(binarize(sal, t), sal.astype(np.float64) > np.float64(t))
