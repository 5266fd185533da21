"""Scores of maps against masks and of the classifier against slice labels.

Segmentation metrics are :class:`Metric` objects registered in the ``xaiseg.metrics``
entry-point group, so a third-party package adds a column to every benchmark the same way the
built-ins do. A metric is called per hemorrhage-positive slice as
``metric(saliency=..., pred=..., gt=..., spacing=..., region=...) -> float``; ``thresholded``
says whether it reads the binary mask (and so depends on the threshold strategy) or only the
map. Its metadata drives the reports: the terminal table's column (``label``, ``unit``,
``decimals``, ``spread``, ``in_table``) and the ranking's direction (``higher_is_better``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .auc import mann_whitney_auc
from .detection import detection_metrics, roc_auc
from .segmentation import (
    binarize,
    dice,
    dice_curve,
    directed_surface_distances,
    hd95,
    iou,
    pixel_auroc,
    pointing_game,
    predicted_area,
    relevance_mass,
    surface,
)


@dataclass(frozen=True)
class Metric:
    """A per-slice segmentation score with the metadata reports need."""

    name: str
    fn: Callable[..., float]
    thresholded: bool
    higher_is_better: bool = True  # the direction of the benchmark's ranking when it ranks by this metric
    unit: str = ""  # shown after the label in the terminal table's header
    description: str = ""
    label: str = ""  # the terminal table's column header (default: the name)
    in_table: bool = True  # a column of the terminal table (every metric is in the CSVs and JSON)
    decimals: int = 3  # digits of the table's cells
    spread: bool = True  # the table shows "mean ± std" (else the mean alone)

    @property
    def header(self) -> str:
        """The terminal table's column header: label and unit (``HD95 mm``)."""
        return f"{self.label or self.name} {self.unit}".strip()

    def __call__(
        self,
        *,
        saliency: np.ndarray,
        pred: np.ndarray,
        gt: np.ndarray,
        spacing: tuple[float, float] = (1.0, 1.0),
        region: np.ndarray | None = None,
    ) -> float:
        return float(self.fn(saliency=saliency, pred=pred, gt=gt, spacing=spacing, region=region))


DICE = Metric("dice", lambda pred, gt, **_: dice(pred, gt), thresholded=True, label="Dice",
              description="Dice of the thresholded map")
IOU = Metric("iou", lambda pred, gt, **_: iou(pred, gt), thresholded=True, label="IoU",
             description="intersection over union of the thresholded map")
HD95 = Metric("hd95", lambda pred, gt, spacing, **_: hd95(pred, gt, spacing), thresholded=True,
              higher_is_better=False, unit="mm", label="HD95",
              description="95th-percentile Hausdorff distance (MONAI definition), NaN if a mask is empty")
AUROC = Metric("auroc", lambda saliency, gt, region=None, **_: pixel_auroc(saliency, gt, region),
               thresholded=False, label="AUROC",
               description="pixel AUROC of the map (inside the brain mask when used)")
RELEVANCE_MASS = Metric("relevance_mass", lambda saliency, gt, **_: relevance_mass(saliency, gt),
                        thresholded=False, in_table=False, description="share of the map's mass inside the mask")
POINTING_GAME = Metric("pointing_game", lambda saliency, gt, **_: pointing_game(saliency, gt),
                       thresholded=False, label="pointing", decimals=2, spread=False,
                       description="the map's maximum falls inside the mask")

BUILTIN_ORDER = ("dice", "iou", "hd95", "auroc", "relevance_mass", "pointing_game")

__all__ = [
    "AUROC",
    "BUILTIN_ORDER",
    "DICE",
    "HD95",
    "IOU",
    "Metric",
    "POINTING_GAME",
    "RELEVANCE_MASS",
    "binarize",
    "detection_metrics",
    "dice",
    "dice_curve",
    "directed_surface_distances",
    "hd95",
    "iou",
    "mann_whitney_auc",
    "pixel_auroc",
    "pointing_game",
    "predicted_area",
    "relevance_mass",
    "roc_auc",
    "surface",
]
