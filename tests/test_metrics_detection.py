"""Detection metrics against sklearn and hand counts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from xaiseg.metrics import detection_metrics, roc_auc


def test_auc_matches_sklearn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(200) > 0.6
    p = np.round(np.clip(rng.normal(0.4 + 0.3 * y, 0.2), 0, 1), 1)
    assert roc_auc(y, p) == pytest.approx(metrics.roc_auc_score(y, p))
    assert math.isnan(roc_auc(np.ones(4), np.arange(4)))


def test_counts_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.45, 0.7, 0.1, 0.1, 0.3, 0.4])
    m = detection_metrics(y, p)
    # hat = [1,1,0,1,0,0,0,0]: tp 2, fn 1, fp 1, tn 4
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(4 / 6)
    # AUC from probabilities (13/15 pairs ordered), not from hard labels (11/15)
    pairs = [(a, b) for a in p[:3] for b in p[3:]]
    assert m["auc"] == pytest.approx(sum((a > b) + 0.5 * (a == b) for a, b in pairs) / len(pairs))
    assert m["auc"] == pytest.approx(13 / 15)
    assert detection_metrics(y, (p >= 0.5).astype(float))["auc"] == pytest.approx(11 / 15)
