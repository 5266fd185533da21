"""Automatic brain (intracranial) mask of a head-CT slice in HU, for data sets that ship none.

Recipe (scipy.ndimage):

1. a 3x3 median filter, so noise does not break the thresholds while the edge between bone and
   brain stays sharp (a Gaussian would smear bone into the adjacent brain pixels);
2. bone = HU > ``bone_hu``; soft tissue (brain, CSF, blood) = ``tissue_hu[0]`` < HU <
   ``tissue_hu[1]``;
3. inside the skull = the bone's holes (``binary_fill_holes``), minus the bone; when the skull
   ring is open on this slice (skull base, craniectomy) and has no holes, all soft tissue is the
   candidate instead;
4. a small opening (``open_mm``) cuts thin bridges through skull gaps to the scalp; inside a
   closed skull every sizeable component is kept (the skull base splits the cranial cavity
   into compartments), otherwise only the largest; then holes are filled, except with bone
   (> ``bone_hu``) or air (< -200 HU) -- skull-base bone and sinuses stay out;
5. erosion by ``margin_mm`` (exact in mm with anisotropic spacing: a Euclidean distance
   transform), to keep partial-volume bone out.

The result is the intracranial space -- brain, CSF and any hemorrhage, extra-axial blood
(epidural, subdural) included -- which is what an attribution map should be restricted to.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def brain_mask(
    hu,
    spacing: Sequence[float] = (1.0, 1.0),
    margin_mm: float = 0.5,
    bone_hu: float = 250.0,
    tissue_hu: tuple[float, float] = (-20.0, 150.0),
    median: bool = True,
    open_mm: float = 2.0,
    min_area_mm2: float = 300.0,
) -> np.ndarray:
    """uint8 (H, W) mask of the intracranial space of one axial slice ``hu`` (H, W) in HU.

    ``spacing`` is (row_mm, col_mm). Returns all zeros when no plausible brain region
    (at least ``min_area_mm2``) is found.
    """
    from scipy import ndimage as ndi

    x = np.asarray(hu.cpu() if hasattr(hu, "cpu") else hu, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected one (H, W) slice, got shape {x.shape}")
    sy, sx = (float(s) for s in spacing)
    if median:
        x = ndi.median_filter(x, size=3, mode="nearest")
    bone = x > bone_hu
    tissue = (x > tissue_hu[0]) & (x < tissue_hu[1])
    inside = ndi.binary_fill_holes(bone) & ~bone
    cand = tissue & inside
    closed = cand.sum() * sy * sx >= min_area_mm2
    if not closed:  # open skull ring on this slice: no holes to fill
        cand = tissue
    if open_mm > 0:
        cand = ndi.binary_opening(cand, structure=_ellipse(open_mm / 2, sy, sx))
    labels, n = ndi.label(cand)
    if n == 0:
        return np.zeros(x.shape, dtype=np.uint8)
    area = np.bincount(labels.ravel())[1:] * (sy * sx)
    if closed:  # inside a closed skull every sizeable compartment is intracranial (skull base)
        ids = np.flatnonzero(area >= min(min_area_mm2, 0.1 * area.max())) + 1
    else:
        ids = np.array([int(np.argmax(area)) + 1])
    if area[ids - 1].sum() < min_area_mm2:
        return np.zeros(x.shape, dtype=np.uint8)
    keep = np.isin(labels, ids)
    # fill holes (noise, opening losses) but not with the bone and air they may enclose
    keep = ndi.binary_fill_holes(keep) & ~bone & (x > -200.0)
    if margin_mm > 0:
        keep = ndi.distance_transform_edt(keep, sampling=(sy, sx)) > margin_mm
    return keep.astype(np.uint8)


def _ellipse(radius_mm: float, sy: float, sx: float) -> np.ndarray:
    """A disc of ``radius_mm`` on a grid with (sy, sx) mm pixels (at least 3x3)."""
    ry, rx = max(1, int(round(radius_mm / sy))), max(1, int(round(radius_mm / sx)))
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    return ((yy * sy) ** 2 + (xx * sx) ** 2) <= max(radius_mm, min(sy, sx)) ** 2 + 1e-9
