"""What a segmenter's output channels mean: the loss they are trained with and the lesion
probability read from them.

One channel: a lesion logit (sigmoid; MONAI's DiceCELoss then uses binary cross-entropy).
Two channels: background and lesion logits (softmax; Dice on the lesion channel only).
"""
from __future__ import annotations

import torch
from torch import nn


def segmentation_loss(out_channels: int) -> nn.Module:
    """MONAI ``DiceCELoss`` for (B, out_channels, H, W) logits and (B, 1, H, W) 0/1 masks.

    ``batch=True`` pools the Dice over the batch: a slice without hemorrhage has no Dice of its
    own (0/0), so per-slice Dice would reward or punish empty slices arbitrarily.
    """
    from monai.losses import DiceCELoss

    if out_channels == 1:
        return DiceCELoss(sigmoid=True, batch=True)
    return DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, batch=True)


def lesion_probability(logits: torch.Tensor) -> torch.Tensor:
    """(B, 1 or 2, H, W) logits -> (B, H, W) float32 probability of hemorrhage in [0, 1]."""
    x = logits.float()
    if x.shape[1] == 1:
        return x[:, 0].sigmoid()
    return x.softmax(dim=1)[:, 1]
