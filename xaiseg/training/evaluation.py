"""Slice-level detection metrics used in the training log (ICH yes/no from the ``any`` label)."""
from __future__ import annotations

import numpy as np


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half).

    NaN when only one class is present (the AUC is undefined, not 0.5).
    """
    from scipy.stats import rankdata

    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC (from probabilities), accuracy, sensitivity and specificity at ``threshold``."""
    y = np.asarray(y_true).astype(bool).ravel()
    pred = np.asarray(prob).ravel() >= threshold
    tp, tn = int((pred & y).sum()), int((~pred & ~y).sum())
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    nan = float("nan")
    return {
        "auc": roc_auc(y, prob),
        "accuracy": (tp + tn) / len(y) if len(y) else nan,
        "sensitivity": tp / n_pos if n_pos else nan,
        "specificity": tn / n_neg if n_neg else nan,
    }


def per_label_auc(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict[str, float]:
    """AUC of each column (subtype task); NaN where a label has only one class in the split."""
    return {n: roc_auc(labels[:, i], probs[:, i]) for i, n in enumerate(names)}
