"""Slice-level detection metrics used in the training log (ICH yes/no from the ``any`` label)."""
from __future__ import annotations

import numpy as np


def _known(y_true: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Labels as bool and the scores, without the slices whose label is unknown (NaN): cast to
    bool a NaN would count as positive."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    keep = ~np.isnan(y)
    return (y[keep] > 0.5, *(np.asarray(s, dtype=np.float64).ravel()[keep] for s in scores))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half).

    NaN when only one class is present (the AUC is undefined, not 0.5). Unknown (NaN) labels
    are left out.
    """
    from scipy.stats import rankdata

    y, s = _known(y_true, score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC (from probabilities), accuracy, sensitivity and specificity at ``threshold``; unknown
    (NaN) labels are left out."""
    y, p = _known(y_true, prob)
    pred = p >= threshold
    tp, tn = int((pred & y).sum()), int((~pred & ~y).sum())
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    nan = float("nan")
    return {
        "auc": roc_auc(y, p),
        "accuracy": (tp + tn) / len(y) if len(y) else nan,
        "sensitivity": tp / n_pos if n_pos else nan,
        "specificity": tn / n_neg if n_neg else nan,
    }


def per_label_auc(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict[str, float]:
    """AUC of each column (subtype task); NaN where a label has only one class in the split.
    Unknown (NaN) labels are left out per column."""
    return {n: roc_auc(labels[:, i], probs[:, i]) for i, n in enumerate(names)}


def evaluate_checkpoint(
    checkpoint: str, data: str, layout: str = "auto", *, device: str | None = None, batch_size: int = 64,
    progress: bool = True,
) -> dict[str, float]:
    """Slice-level detection metrics of a trained checkpoint on every slice of a data set on disk.

    The ``any`` label is the truth, P(hemorrhage) the score (softmax class 1 or sigmoid of ``any``).
    Slices with an unknown (NaN) ``any`` label are left out.
    """
    import torch
    from tqdm.auto import tqdm

    from ..data import open_dataset
    from .checkpoint import load_model

    loaded = load_model(checkpoint, device=device)
    ds = open_dataset(data, layout=layout)
    idx = [i for i, r in enumerate(ds.records) if not np.isnan(r.labels[-1])]
    ys, ps = [], []
    with torch.no_grad():
        for start in tqdm(range(0, len(idx), batch_size), desc="evaluate", disable=not progress, leave=False):
            chunk = idx[start : start + batch_size]
            # one slice at a time through the preprocessor: slices may differ in size
            x = torch.stack([loaded.preprocessor(torch.as_tensor(ds[i]["image"]).float()).image for i in chunk])
            x = loaded.normalize(x.to(loaded.device))
            ps.append(loaded.detection_probability(loaded.model(x)).cpu().numpy())
            ys.extend(float(ds.records[i].labels[-1]) for i in chunk)
    out = detection_metrics(np.array(ys), np.concatenate(ps))
    out["n"], out["positives"] = len(ys), int(np.sum(np.array(ys) > 0.5))
    return out
