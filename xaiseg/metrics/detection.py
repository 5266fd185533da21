"""Slice-level detection scores of the classifier (DESIGN.md §3): AUC from probabilities, and
accuracy, sensitivity, specificity and F1 at a decision threshold on the probability."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties ½ — equal to sklearn's roc_auc_score);
    NaN when only one class is present."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def detection_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC from ``probs``; the others from ``probs >= threshold`` (0.5: the argmax of a 2-logit
    softmax). Undefined ratios (e.g. sensitivity with no positive slice) are NaN."""
    y = np.asarray(labels).astype(bool).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    hat = p >= threshold
    tp = int((hat & y).sum())
    tn = int((~hat & ~y).sum())
    fp = int((hat & ~y).sum())
    fn = int((~hat & y).sum())
    sens = _ratio(tp, tp + fn)
    prec = _ratio(tp, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "auc": roc_auc(y, p),
        "accuracy": _ratio(tp + tn, y.size),
        "sensitivity": sens,
        "specificity": _ratio(tn, tn + fp),
        "precision": prec,
        "f1": f1,
        "n": int(y.size),
        "n_positive": int(y.sum()),
        "decision_threshold": float(threshold),
    }

