"""Validation and held-out scores of a segmenter on in-memory slices (model input grid).

Dice is xaiseg's (:func:`xaiseg.metrics.dice` of ``binarize(prob, t)``), per hemorrhage-positive
slice and averaged, as the benchmark reports it; ``dice_pooled`` pools every pixel of every
slice (negatives included), the quantity the Dice part of the loss optimises.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..metrics import binarize, dice
from ..training.checkpoint import normalize
from .lesion import lesion_probability

THRESHOLD = 0.5  # the probability at which the training log counts a pixel as lesion


def predict(model: nn.Module, images: torch.Tensor, *, normalization: Any, device: torch.device,
            batch_size: int = 64, amp_ctx: Callable[[], Any] = nullcontext,
            loss_fn: nn.Module | None = None, masks: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """(N, C, S, S) windowed images -> ((N, S, S) probabilities on the CPU, mean loss or NaN)."""
    was_training = model.training
    model.eval()
    probs, loss_sum = [], 0.0
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = normalize(images[i : i + batch_size].to(device).float(), normalization)
            with amp_ctx():
                logits = model(x)
            if loss_fn is not None and masks is not None:
                y = masks[i : i + batch_size].to(device).float()[:, None]
                loss_sum += float(loss_fn(logits.float(), y)) * len(x)
            probs.append(lesion_probability(logits).cpu())
    model.train(was_training)
    mean_loss = loss_sum / len(images) if loss_fn is not None and masks is not None and len(images) else float("nan")
    return torch.cat(probs) if probs else torch.empty(0), mean_loss


def dice_scores(probs: torch.Tensor, masks: torch.Tensor, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Mean per-slice Dice over the positive slices, pooled Dice, and counts."""
    p, g = probs.numpy(), masks.numpy() > 0
    positive = [i for i in range(len(g)) if g[i].any()]
    per_slice = [dice(binarize(p[i], threshold), g[i]) for i in positive]
    pred = binarize(p, threshold)
    denom = int(pred.sum()) + int(g.sum())
    return {
        "dice": float(np.mean(per_slice)) if per_slice else float("nan"),
        "dice_pooled": 2.0 * int((pred & g).sum()) / denom if denom else 1.0,
        "n": int(len(g)),
        "positives": len(positive),
    }


def evaluate(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, *, loss_fn: nn.Module, **kw: Any) -> dict[str, Any]:
    """Loss and Dice scores of ``model`` on (images, masks)."""
    probs, loss = predict(model, images, loss_fn=loss_fn, masks=masks, **kw)
    return {"loss": loss, **dice_scores(probs, masks)}
