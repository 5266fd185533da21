"""The one Mann–Whitney AUC of the project (detection AUC, the training log's AUC, pixel AUROC).

NaN policy, the same everywhere: a label that is NaN is *unknown* and its (label, score) pair
is dropped before anything is counted — cast to bool a NaN would silently become a positive,
compared as ``> 0.5`` a negative. Known labels are positive when ``> 0.5`` (bool labels as
they are). The AUC is NaN when the known labels hold only one class: it is undefined then,
not 0.5.
"""
from __future__ import annotations

import numpy as np

from .ranking_fast import auc_from_scores


def known_labels(labels: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(labels as bool, *scores as float64)``, flattened, without the pairs whose label is NaN."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    keep = ~np.isnan(y)
    out = [y[keep] > 0.5]
    for s in scores:
        s = np.asarray(s, dtype=np.float64).ravel()
        if s.shape != y.shape:
            raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
        out.append(s[keep])
    return tuple(out)


def mann_whitney_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting ½ — equal to
    sklearn's ``roc_auc_score``. NaN labels are dropped; NaN if one class is missing."""
    y, s = known_labels(labels, scores)
    return auc_from_scores(s[y], s[~y])  # the rank form's float, without its argsort
