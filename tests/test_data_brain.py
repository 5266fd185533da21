"""Automatic brain mask against the phantom's own intracranial mask."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from xaiseg.data.brain import brain_mask
from xaiseg.data.phantom import render_slice


@pytest.mark.parametrize("size,z", [(128, 0.2), (128, 0.55), (256, 0.4), (256, 0.85)])
def test_covers_the_brain_and_excludes_skull_and_air(size: int, z: float) -> None:
    s = render_slice(np.random.default_rng(int(z * 100) + size), size=size, z=z, subtypes=("subdural", "intraparenchymal"))
    auto = brain_mask(s.hu, s.spacing) > 0
    truth = s.brain > 0
    dice = 2 * (auto & truth).sum() / (auto.sum() + truth.sum())
    assert dice > 0.95
    skull = (s.hu > 700) & ~truth
    air = s.hu < -500
    assert not (auto & skull).any() and not (auto & air).any()
    assert not (auto & ~ndi.binary_dilation(truth)).any()  # nothing outside the skull's inner table
    lesion = s.mask > 0
    if lesion.any():  # hemorrhage (extra-axial included) is intracranial: mostly kept
        assert (auto & lesion).sum() > 0.6 * lesion.sum()


def test_margin_is_in_mm_and_empty_input() -> None:
    s = render_slice(np.random.default_rng(1), size=128, z=0.5)
    a = brain_mask(s.hu, s.spacing, margin_mm=0.0) > 0
    b = brain_mask(s.hu, s.spacing, margin_mm=5.0) > 0
    assert b.sum() < a.sum() and not (b & ~a).any()
    # every kept pixel is more than 5 mm from the unmargined mask's edge
    assert ndi.distance_transform_edt(a, sampling=s.spacing)[b].min() > 5.0
    assert brain_mask(np.full((64, 64), -1000.0), (1.0, 1.0)).sum() == 0
