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

    @property
    def has_mask(self) -> bool:
        """A hemorrhage mask on this slice: its row is a ``positive`` one, the only kind scored."""
        return bool(self.gt.any())


def quantize(maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """Model-grid maps as stored in the cache (float16). Every score is computed from this
    rounded copy — in an uninterrupted run as in a resumed one — so both give the same numbers;
    the rounding (< 5e-4 on [0, 1]) is far below any threshold step."""
    if isinstance(maps, torch.Tensor) and maps.dtype == torch.float32:
        # torch rounds float32 to float16 as numpy does (to nearest, ties to even: every non-NaN
        # float32 checked bit for bit; a signalling NaN comes out as the quiet NaN, which no score
        # tells apart), ~30x faster on the CPU, and on a GPU the copy to the host moves half the bytes
        return maps.detach().to(torch.float16).cpu().numpy()
    a = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    return a.astype(np.float16)


def evaluation_map(raw: np.ndarray, truth: SliceTruth, renormalize: bool = True) -> np.ndarray:
    """Cached model-grid map (S, S) → map on the original grid (H, W), brain-masked and
    renormalised to [0, 1] (float32) with the same per-image min–max as every method's own
    output (a constant map becomes zeros). ``renormalize=False`` (a segmenter's probabilities):
    brain-masked only, so a probability keeps its meaning. One slice of :class:`EvaluationGrid`."""
    return EvaluationGrid([truth]).maps(np.asarray(raw)[None], renormalize)[0]


class EvaluationGrid:
    """:func:`evaluation_map` for a whole batch: slices that share a preprocessing geometry are
    put back on their grid in one torch call on ``device``, brain-masked and renormalised
    together; the same numbers as the per-slice function, bit for bit (tested). Built once per
    batch (the brain masks go to the device once) and used for every method's maps of it."""

    def __init__(self, truths: Sequence[SliceTruth], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        groups: dict[tuple, list[int]] = {}
        for j, t in enumerate(truths):
            groups.setdefault((_hashable(t.geometry), t.brain is None), []).append(j)
        self.n = len(truths)
        self.groups: list[tuple[Any, list[int], torch.Tensor | None]] = []
        for (_g, no_brain), idx in groups.items():
            geometry = truths[idx[0]].geometry
            brain = None if no_brain else torch.from_numpy(
                np.stack([np.asarray(truths[j].brain, dtype=np.float32) for j in idx])).to(self.device)
            self.groups.append((geometry, idx, brain))
        self.shapes = [t.gt.shape for t in truths]

    def maps(self, raw: np.ndarray, renormalize: bool = True) -> list[np.ndarray]:
        """Cached model-grid maps (B, S, S) → one (H, W) float32 map per slice, as
        :func:`evaluation_map` makes it."""
        if len(raw) != self.n:
            raise ValueError(f"{len(raw)} maps for a batch of {self.n} slices")
        out: list[np.ndarray | None] = [None] * self.n
        for geometry, idx, brain in self.groups:
            m = geometry.to_original(torch.from_numpy(np.asarray(raw[idx], dtype=np.float32)).to(self.device))
            if tuple(m.shape[1:]) != tuple(self.shapes[idx[0]]):
                raise RuntimeError(f"map put back on the original grid has shape {tuple(m.shape[1:])}, the mask {self.shapes[idx[0]]}")
            if brain is not None:
                m.mul_(brain)  # in place: m is new, and a fresh 512² buffer costs its page faults again
            m = minmax_normalize(m, inplace=True) if renormalize else m.clamp_(0.0, 1.0)  # m is ours alone
            host = m.cpu().numpy()
            for k, j in enumerate(idx):
                out[j] = host[k]
        return out  # type: ignore[return-value]


def _hashable(geometry: Any) -> Any:
    """A geometry as a grouping key: itself (equal geometries group), or its identity."""
    try:
        hash(geometry)
        return geometry
    except TypeError:
        return ("id", id(geometry))


def threshold_free_scores(sal: np.ndarray, truth: SliceTruth, metrics: Sequence[Metric]) -> dict[str, float]:
    return {
        m.name: m(saliency=sal, pred=np.zeros_like(truth.gt), gt=truth.gt, spacing=truth.spacing, region=truth.brain)
        for m in metrics if not m.thresholded
    }


def thresholded_scores(sal: np.ndarray, truth: SliceTruth, t: float, metrics: Sequence[Metric],
                       positive: bool = True) -> dict[str, float]:
    """The thresholded metrics of a slice with a mask (``positive``) and its predicted area; a
    slice without one gets its predicted area only (the false-positive load), which is all its
    row keeps."""
    pred = binarize(sal, t)
    out = {m.name: m(saliency=sal, pred=pred, gt=truth.gt, spacing=truth.spacing, region=truth.brain)
           for m in metrics if m.thresholded} if positive else {}
    out["pred_area_px"], out["pred_area_mm2"] = predicted_area(pred, truth.spacing)
    return out


def curve(sal: np.ndarray, truth: SliceTruth, grid: np.ndarray) -> np.ndarray:
    return dice_curve(sal, truth.gt, grid)
