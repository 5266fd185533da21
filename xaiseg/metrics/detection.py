"""Slice-level detection scores of the classifier (docs/design.md §3): AUC from
probabilities, and accuracy, sensitivity, specificity, precision and F1 at a decision threshold
on the probability. Slices whose label is unknown (NaN) are left out of every figure."""
from __future__ import annotations

import numpy as np

from .auc import known_labels, mann_whitney_auc

roc_auc = mann_whitney_auc  # the public name of the one AUC (see metrics/auc.py for its NaN policy)


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def detection_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC from ``probs``; the others from ``probs >= threshold`` (0.5: the argmax of a 2-logit
    softmax). Undefined ratios (e.g. sensitivity with no positive slice) are NaN; ``n`` and
    ``n_positive`` count the slices with a known label."""
    y, p = known_labels(labels, probs)
    hat = p >= threshold
    tp = int((hat & y).sum())
    tn = int((~hat & ~y).sum())
    fp = int((hat & ~y).sum())
    fn = int((~hat & y).sum())
    return {
        "auc": mann_whitney_auc(y, p),
        "accuracy": _ratio(tp + tn, y.size),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "n": int(y.size),
        "n_positive": int(y.sum()),
        "decision_threshold": float(threshold),
    }
