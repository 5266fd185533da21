"""EvaluationGrid: a batch's maps put back on the slice grids at once equal, bit for bit, the
per-slice steps written out here (Geometry.to_original of one map, numpy brain mask and
min–max), with mixed geometries, with and without brain masks; evaluation_map is one slice."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiseg.benchmark.evaluate import EvaluationGrid, SliceTruth, evaluation_map
from xaiseg.data.preprocess import Geometry


def _one_slice(raw, t, renormalize):
    m = t.geometry.to_original(raw.astype(np.float32)).astype(np.float32)
    if t.brain is not None:
        m = m * t.brain.astype(np.float32)
    if not renormalize:
        return np.clip(m, 0.0, 1.0)
    lo, hi = m.min(), m.max()
    span = np.float32(hi - lo)
    if not span > 1e-6 * max(abs(hi), abs(lo)):
        return np.zeros_like(m)
    return (m - lo) / span


def _truths(rng, brain: bool):
    # three geometries: a 512² slice shrunk to 128 (no crop), a 300×340 slice resized and padded,
    # a 128² slice as it is; shuffled so that a geometry's slices are not contiguous
    geos = [Geometry((512, 512), (128, 128), 0, 0, (128, 128)),
            Geometry((300, 340), (113, 128), -7, 0, (128, 128)),
            Geometry((128, 128), (128, 128), 0, 0, (128, 128))]
    out = []
    for k in [0, 1, 0, 2, 1, 0, 2]:
        g = geos[k]
        gt = rng.random(g.original) > 0.97
        b = (rng.random(g.original) > 0.2) if brain else None
        out.append(SliceTruth(gt, (0.5, 0.6), b, g))
    return out


@pytest.mark.parametrize("brain", [True, False])
@pytest.mark.parametrize("renormalize", [True, False])
def test_batch_equals_each_slice(brain, renormalize):
    rng = np.random.default_rng(3)
    truths = _truths(rng, brain)
    q = rng.random((len(truths), 128, 128)).astype(np.float16)
    q[3] = 0.25  # a constant map: zeros after renormalising
    grid = EvaluationGrid(truths, torch.device("cpu"))
    got = grid.maps(q, renormalize=renormalize)
    for j, t in enumerate(truths):
        want = _one_slice(q[j], t, renormalize)
        assert got[j].dtype == want.dtype == np.float32
        assert got[j].shape == t.gt.shape
        assert np.array_equal(got[j], want), j
        assert np.array_equal(evaluation_map(q[j], t, renormalize=renormalize), want)
    if renormalize and not brain:
        assert not got[3].any()  # the constant map


def test_batch_size_must_match():
    truths = _truths(np.random.default_rng(0), True)
    with pytest.raises(ValueError, match="maps for a batch"):
        EvaluationGrid(truths).maps(np.zeros((2, 128, 128), np.float16))


def test_quantize_rounds_float32_as_numpy_does_bit_for_bit():
    """quantize converts float32 maps to float16 in torch; the bits must be numpy's (round to
    nearest, ties to even) everywhere: ties, subnormals, overflow, infinities, NaN."""
    from xaiseg.benchmark.evaluate import quantize

    rng = np.random.default_rng(3)
    every_tie = (np.arange(0, 2**16, dtype=np.uint32) << 13 | 1 << 12).view(np.float32)  # halfway between float16 neighbours
    special = np.array([0.0, -0.0, 1.0, 65504.0, 65520.0, 1e6, -1e6, 6e-8, 3e-8, 2.9e-8, 1e-40, np.inf, -np.inf, np.nan],
                       np.float32)
    values = np.concatenate([every_tie, np.nextafter(every_tie, np.float32(np.inf)), rng.random(50_000, np.float32),
                             rng.standard_normal(50_000).astype(np.float32) * 1e-5, special])
    got = quantize(torch.from_numpy(values.copy()))
    expected = values.astype(np.float16)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
