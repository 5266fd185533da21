"""Segmentation metrics against hand-built cases and independent computations (brute-force
point-set distances for HD95, sklearn for AUROC)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import xaiseg
from xaiseg.metrics import (
    binarize,
    dice,
    dice_curve,
    hd95,
    iou,
    pixel_auroc,
    pointing_game,
    predicted_area,
    relevance_mass,
)


def _box(shape, r0, r1, c0, c1):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


def test_dice_iou_hand_built():
    gt = _box((10, 10), 2, 6, 2, 6)  # 16 px
    pred = _box((10, 10), 4, 8, 2, 6)  # 16 px, overlap 8
    assert dice(pred, gt) == pytest.approx(2 * 8 / 32)
    assert iou(pred, gt) == pytest.approx(8 / 24)
    assert dice(np.zeros_like(gt), gt) == 0.0 and iou(np.zeros_like(gt), gt) == 0.0
    assert dice(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
    with pytest.raises(ValueError, match="shape mismatch"):
        dice(gt, gt[:5])


def _surface_points(m: np.ndarray) -> np.ndarray:
    # independent surface definition: a mask pixel with a 4-neighbour outside the mask or the image
    p = np.pad(m, 1)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return np.argwhere(m & ~inner).astype(float)


def _hd95_bruteforce(pred, gt, spacing):
    a = _surface_points(pred) * np.asarray(spacing)
    b = _surface_points(gt) * np.asarray(spacing)
    d = cdist(a, b)
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


def test_hd95_hand_built_single_pixels():
    a = np.zeros((9, 9), bool)
    b = np.zeros((9, 9), bool)
    a[1, 1] = True
    b[4, 5] = True
    # one surface pixel each: distance = sqrt((3*2)^2 + (4*0.5)^2) with spacing (2, 0.5)
    assert hd95(a, b, (2.0, 0.5)) == pytest.approx(math.hypot(6.0, 2.0))
    assert hd95(a, a, (1.0, 1.0)) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_hd95_matches_bruteforce_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    def blob():
        m = rng.random((24, 20)) > 0.75
        return ndimage.binary_closing(ndimage.binary_dilation(m, iterations=1), iterations=1)

    pred, gt = blob(), blob()
    spacing = (rng.uniform(0.4, 2.0), rng.uniform(0.4, 2.0))
    assert hd95(pred, gt, spacing) == pytest.approx(_hd95_bruteforce(pred, gt, spacing), rel=1e-9)


def test_hd95_is_nan_for_empty_masks():
    gt = _box((8, 8), 2, 4, 2, 4)
    assert math.isnan(hd95(np.zeros_like(gt), gt))
    assert math.isnan(hd95(gt, np.zeros_like(gt)))


def test_pixel_auroc_matches_sklearn_with_ties_and_region():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    gt = rng.random((16, 16)) > 0.8
    sal = np.round(rng.random((16, 16)) + 0.3 * gt, 1)  # rounding makes many ties
    assert pixel_auroc(sal, gt) == pytest.approx(metrics.roc_auc_score(gt.ravel(), sal.ravel()))
    region = _box((16, 16), 0, 12, 0, 16)
    r = region | gt
    assert pixel_auroc(sal, gt, region) == pytest.approx(metrics.roc_auc_score(gt[r], sal[r]))
    assert math.isnan(pixel_auroc(sal, np.zeros_like(gt)))


def test_relevance_mass_and_pointing_game():
    gt = _box((4, 4), 0, 2, 0, 2)
    sal = np.zeros((4, 4))
    sal[0, 0] = 3.0
    sal[3, 3] = 1.0
    assert relevance_mass(sal, gt) == pytest.approx(0.75)
    assert relevance_mass(np.zeros((4, 4)), gt) == 0.0
    assert pointing_game(sal, gt) == 1.0
    sal[3, 3] = 5.0
    assert pointing_game(sal, gt) == 0.0
    sal[0, 1] = 5.0  # two tied maxima, one inside
    assert pointing_game(sal, gt) == 0.5
    assert pointing_game(np.zeros((4, 4)), gt) == pytest.approx(4 / 16)  # constant map: area share


def test_predicted_area_in_pixels_and_mm2():
    assert predicted_area(_box((5, 5), 0, 2, 0, 3), (0.5, 2.0)) == (6, 6.0)


def test_dice_curve_equals_dice_of_binarized_maps():
    rng = np.random.default_rng(1)
    sal = np.round(rng.random((20, 20)), 2).astype(np.float32)  # values sit exactly on the grid
    gt = _box((20, 20), 3, 12, 5, 15)
    grid = np.round(np.arange(1, 100) / 100, 2)
    expected = [dice(binarize(sal, t), gt) for t in grid]
    np.testing.assert_allclose(dice_curve(sal, gt, grid), expected, rtol=0, atol=1e-12)
    assert binarize(np.zeros((3, 3)), 0.0).sum() == 0  # strictly greater: zero map → empty


def test_metrics_are_registered_and_callable_through_the_registry():
    assert {"dice", "iou", "hd95", "auroc", "relevance_mass", "pointing_game"} <= set(xaiseg.list_metrics())
    gt = _box((8, 8), 2, 5, 2, 5)
    sal = gt.astype(float) * 0.9
    m = xaiseg.get_metric("dice")
    assert m.thresholded and m(saliency=sal, pred=sal > 0.5, gt=gt) == 1.0
    assert xaiseg.get_metric("auroc")(saliency=sal, pred=sal > 0.5, gt=gt) == 1.0
