"""Training losses for the two strategies of the published study.

- ``binary``: two logits (no ICH, ICH) and one softmax cross-entropy — not two sigmoids.
- ``subtypes``: six logits (five subtypes + ``any``, in ``xaiseg.data.constants.LABELS`` order),
  each a sigmoid with binary cross-entropy, optionally focal (Lin et al. 2017) to down-weight
  the many easy negatives of rare subtypes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_targets(labels: torch.Tensor) -> torch.Tensor:
    """(B, 6) slice labels -> (B,) class indices: 1 iff the ``any`` label is set."""
    return (labels[:, -1] > 0.5).long()


def focal_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float | None = None) -> torch.Tensor:
    """Mean sigmoid focal loss ``-alpha_t (1 - p_t)^gamma log p_t``; ``gamma = 0`` is plain BCE.

    ``alpha`` (if given) weights positives by ``alpha`` and negatives by ``1 - alpha``.
    """
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if gamma:
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        ce = ce * (1 - p_t).pow(gamma)
    if alpha is not None:
        ce = ce * (alpha * targets + (1 - alpha) * (1 - targets))
    return ce.mean()


def task_loss(logits: torch.Tensor, labels: torch.Tensor, task: str, focal_gamma: float = 0.0) -> torch.Tensor:
    """The training loss of ``task`` for logits (B, K) and slice labels (B, 6)."""
    logits = logits.float()
    if task == "binary":
        return F.cross_entropy(logits, binary_targets(labels))
    if task == "subtypes":
        return focal_bce_with_logits(logits, labels.float(), focal_gamma)
    raise ValueError(f"unknown task {task!r}")
