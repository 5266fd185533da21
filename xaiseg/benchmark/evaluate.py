"""From a method's map on the model's input grid to scores on the original slice grid.

Decision (documented in docs/benchmark.md): maps are computed on the model's input grid and
evaluated on the *original* slice grid, against the untouched ground-truth mask with the
slice's own pixel spacing. The map is put back with the preprocessing geometry (undo crop/pad,
bilinear resize), multiplied by the brain mask and min–max renormalised — the same steps for
every method — so no mask is ever resampled and HD95 is in true millimetres.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..attribution.maps import minmax_normalize
from ..metrics import Metric, binarize, dice_curve, predicted_area


@dataclass
class SliceTruth:
    """What scoring needs of one slice, on its original grid."""

    gt: np.ndarray  # bool (H, W)
    spacing: tuple[float, float]
    brain: np.ndarray | None  # bool (H, W) or None when brain masking is off
    geometry: Any  # the preprocessing geometry: .to_original(map) → (H, W)


def quantize(maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """Model-grid maps as stored in the cache (float16). Every score is computed from this
    rounded copy — in an uninterrupted run as in a resumed one — so both give the same numbers;
    the rounding (< 5e-4 on [0, 1]) is far below any threshold step."""
    a = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    return a.astype(np.float16)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def evaluation_map(raw: np.ndarray, truth: SliceTruth, renormalize: bool = True) -> np.ndarray:
    """Cached model-grid map (S, S) → map on the original grid (H, W), brain-masked and
    renormalised to [0, 1] (float32). ``renormalize=False`` (a segmenter's probabilities):
    brain-masked only, so a probability keeps its meaning."""
    m = _to_numpy(truth.geometry.to_original(raw.astype(np.float32))).astype(np.float32)
    if m.shape != truth.gt.shape:
        raise RuntimeError(f"map put back on the original grid has shape {m.shape}, the mask {truth.gt.shape}")
    if truth.brain is not None:
        m = m * truth.brain.astype(np.float32)
    if not renormalize:
        return np.clip(m, 0.0, 1.0)
    # the same per-image min–max as every method's own output (a constant map becomes zeros)
    return minmax_normalize(torch.from_numpy(np.ascontiguousarray(m))[None]).numpy()[0]


def threshold_free_scores(sal: np.ndarray, truth: SliceTruth, metrics: Sequence[Metric]) -> dict[str, float]:
    return {
        m.name: m(saliency=sal, pred=np.zeros_like(truth.gt), gt=truth.gt, spacing=truth.spacing, region=truth.brain)
        for m in metrics if not m.thresholded
    }


def thresholded_scores(sal: np.ndarray, truth: SliceTruth, t: float, metrics: Sequence[Metric]) -> dict[str, float]:
    pred = binarize(sal, t)
    out = {m.name: m(saliency=sal, pred=pred, gt=truth.gt, spacing=truth.spacing, region=truth.brain)
           for m in metrics if m.thresholded}
    out["pred_area_px"], out["pred_area_mm2"] = predicted_area(pred, truth.spacing)
    return out


def curve(sal: np.ndarray, truth: SliceTruth, grid: np.ndarray) -> np.ndarray:
    return dice_curve(sal, truth.gt, grid)
