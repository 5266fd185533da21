"""Slice-level detection metrics used in the training log (ICH yes/no from the ``any`` label).

The AUC is the project's one Mann–Whitney AUC (:mod:`xaiseg.metrics.auc`, NaN labels dropped)."""
from __future__ import annotations

import numpy as np

from ..metrics.auc import mann_whitney_auc as roc_auc
from ..metrics.detection import detection_metrics as _benchmark_detection


def detection_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The training log's AUC, accuracy, sensitivity and specificity at ``threshold`` (those of
    :func:`xaiseg.metrics.detection_metrics`); unknown (NaN) labels are left out."""
    full = _benchmark_detection(y_true, prob, threshold)
    return {k: full[k] for k in ("auc", "accuracy", "sensitivity", "specificity")}


def per_label_auc(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> dict[str, float]:
    """AUC of each column (subtype task); NaN where a label has only one class in the split.
    Unknown (NaN) labels are left out per column."""
    return {n: roc_auc(labels[:, i], probs[:, i]) for i, n in enumerate(names)}


def known_label_indices(ds) -> list[int]:
    """The slices of a data set on disk whose ``any`` label is known (not NaN): the ones scored."""
    return [i for i, r in enumerate(ds.records) if not np.isnan(r.labels[-1])]


def slice_probabilities(loaded, ds, indices, *, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """P(hemorrhage) of a loaded checkpoint on the slices ``indices`` of a data set on disk, each
    slice through the checkpoint's own preprocessing (as ``xaiseg train`` validates)."""
    import torch
    from ..progress import progress_bar

    indices = list(indices)
    ps = [np.zeros(0, dtype=np.float32)]
    with torch.no_grad():
        for start in progress_bar(range(0, len(indices), batch_size), desc="evaluate", enabled=progress, leave=False):
            chunk = indices[start : start + batch_size]
            # one slice at a time through the preprocessor: slices may differ in size
            x = torch.stack([loaded.preprocessor(torch.as_tensor(ds[i]["image"]).float()).image for i in chunk])
            x = loaded.normalize(x.to(loaded.device))
            ps.append(loaded.detection_probability(loaded.model(x)).cpu().numpy())
    return np.concatenate(ps)


def labelled_probabilities(loaded, ds, *, batch_size: int = 64, progress: bool = True) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The slices of ``ds`` with a known label: their indices, their ``any`` label (float) and
    the checkpoint's P(hemorrhage) on each (:func:`slice_probabilities`)."""
    idx = known_label_indices(ds)
    ys = np.array([float(ds.records[i].labels[-1]) for i in idx])
    return idx, ys, slice_probabilities(loaded, ds, idx, batch_size=batch_size, progress=progress)


def evaluate_checkpoint(
    checkpoint: str, data: str, layout: str = "auto", *, device: str | None = None, batch_size: int = 64,
    progress: bool = True,
) -> dict[str, float]:
    """Slice-level detection metrics of a trained checkpoint on every slice of a data set on disk.

    The ``any`` label is the truth, P(hemorrhage) the score (softmax class 1 or sigmoid of ``any``).
    Slices with an unknown (NaN) ``any`` label are left out.
    """
    from ..data import open_dataset
    from .checkpoint import load_model

    loaded = load_model(checkpoint, device=device)
    ds = open_dataset(data, layout=layout)
    _, ys, probs = labelled_probabilities(loaded, ds, batch_size=batch_size, progress=progress)
    out = detection_metrics(ys, probs)
    out["n"], out["positives"] = len(ys), int(np.sum(ys > 0.5))
    return out
