"""The one Mann–Whitney AUC: against sklearn and a literal pair-counting loop, its NaN policy,
and that detection, the training log and pixel AUROC all use it."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from xaiseg.metrics import detection_metrics, pixel_auroc
from xaiseg.metrics.auc import mann_whitney_auc
from xaiseg.training import evaluation


def _pairs(y, s):
    """P(positive scores above negative), ties ½, by counting every pair."""
    pos = [v for v, lab in zip(s, y) if lab == 1]
    neg = [v for v, lab in zip(s, y) if lab == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_equals_sklearn_and_the_pair_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    s = rng.integers(0, 6, 40) / 5.0  # few distinct values: many ties
    assert mann_whitney_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert mann_whitney_auc(y, s) == pytest.approx(_pairs(y, s), abs=1e-12)


def test_unknown_labels_are_dropped_not_counted():
    y = np.array([1, 0, 1, 0, np.nan, np.nan])
    s = np.array([0.9, 0.2, 0.4, 0.6, 0.0, 1.0])
    known = _pairs([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6])
    assert mann_whitney_auc(y, s) == pytest.approx(known)
    # as a negative (the old benchmark) or a positive (bool cast) the NaN slices would change it
    assert known != pytest.approx(_pairs([1, 0, 1, 0, 0, 0], s)) and known != pytest.approx(_pairs([1, 0, 1, 0, 1, 1], s))
    assert detection_metrics(y, s)["auc"] == pytest.approx(known)
    assert detection_metrics(y, s)["n"] == 4
    assert evaluation.detection_metrics(y, s)["auc"] == pytest.approx(known)


def test_one_class_is_undefined():
    assert np.isnan(mann_whitney_auc(np.ones(4), np.arange(4.0)))
    assert np.isnan(mann_whitney_auc(np.array([0, 0, np.nan]), np.arange(3.0)))
    with pytest.raises(ValueError):
        mann_whitney_auc(np.ones(3), np.ones(4))


def test_pixel_auroc_is_the_pair_count_over_the_region():
    rng = np.random.default_rng(3)
    sal = rng.integers(0, 4, (6, 7)) / 3.0
    gt = np.zeros((6, 7), bool)
    gt[2:4, 2:5] = True
    region = np.zeros((6, 7), bool)
    region[1:6, 1:6] = True
    keep = (region | gt).ravel()  # a lesion pixel outside the region still counts
    assert pixel_auroc(sal, gt, region) == pytest.approx(_pairs(gt.ravel()[keep].astype(int), sal.ravel()[keep]))


def test_every_auc_of_the_project_is_this_one():
    from xaiseg.metrics import roc_auc

    assert roc_auc is mann_whitney_auc and evaluation.roc_auc is mann_whitney_auc
