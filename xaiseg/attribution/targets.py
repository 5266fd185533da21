"""Which logit an attribution explains."""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch


def normalize_target(target: int | Sequence[int] | torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
    """None, or a (B,) long tensor of class indices on ``device``."""
    if target is None:
        return None
    if isinstance(target, (bool, np.bool_)):
        raise TypeError("target must be an int, a tensor of class indices or None, not a bool")
    if isinstance(target, numbers.Integral):  # int and numpy's integer scalars
        return torch.full((batch,), int(target), dtype=torch.long, device=device)
    if isinstance(target, (list, tuple, np.ndarray)):
        target = torch.as_tensor(np.asarray(target))
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, not {target.dtype}")
        t = target.to(device=device, dtype=torch.long).reshape(-1)
        if t.numel() == 1:
            return t.expand(batch).clone()
        if t.numel() != batch:
            raise ValueError(f"target has {t.numel()} entries for a batch of {batch}")
        return t
    raise TypeError(f"target must be an int, a tensor of class indices or None, not {type(target).__name__}")


def select_logits(logits: torch.Tensor, target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The explained scalar per image and the class indices used.

    ``target=None`` explains the predicted class; a 1-logit model always explains logit 0.
    """
    if logits.dim() != 2:
        raise ValueError(f"expected (B, classes) logits, got shape {tuple(logits.shape)}")
    n = logits.shape[1]
    if target is None:
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device) if n == 1 else logits.argmax(dim=1)
    if int(target.min()) < 0 or int(target.max()) >= n:
        raise ValueError(f"target class out of range for a model with {n} logits: {target.tolist()}")
    return logits.gather(1, target[:, None]).squeeze(1), target
