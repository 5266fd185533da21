"""Pixel grids and smooth random fields for the phantom, cached per image geometry.

A smooth field is a small grid of standard normal values (node spacing ``scale_mm``) interpolated
to the pixels with a separable 4-tap Gaussian kernel. The taps are scaled so that the field has
unit variance at every pixel, whatever the image size: the same physical texture at 128² and 512².
No BLAS call is involved (multi-threaded BLAS on a loaded 2-core machine costs 10-50x here) and no
full-resolution filter is run.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def pixel_coords(size: int, pixel_mm: float) -> np.ndarray:
    """Centre of each pixel in mm, relative to the image centre (1-D, shared by rows and columns)."""
    c = ((np.arange(size, dtype=np.float64) - (size - 1) / 2.0) * pixel_mm).astype(np.float32)
    c.setflags(write=False)
    return c


@lru_cache(maxsize=32)
def _taps(size: int, pixel_mm: float, scale_mm: float) -> tuple[int, np.ndarray, np.ndarray]:
    """Number of grid nodes, (size, 4) node indices and (size, 4) weights along one axis."""
    coords = pixel_coords(size, pixel_mm).astype(np.float64)
    first = coords[0] - 2 * scale_mm
    u = (coords - first) / scale_mm  # position in node units; node n sits at u == n
    base = np.floor(u).astype(np.int64) - 1
    idx = base[:, None] + np.arange(4)[None, :]
    w = np.exp(-0.5 * (u[:, None] - idx) ** 2)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    n_nodes = int(idx.max()) + 1
    idx.setflags(write=False)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return n_nodes, idx, w


N_ANGLE_BINS = 2048  # angular resolution of the per-slice radius tables
ANGLE_BIN_CENTRES = (-np.pi + (np.arange(N_ANGLE_BINS) + 0.5) * (2 * np.pi / N_ANGLE_BINS)).astype(np.float32)
ANGLE_BIN_CENTRES.setflags(write=False)


@lru_cache(maxsize=4)
def polar_grid(size: int, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Radius (mm) and angle bin of every pixel of a (2*size)² grid centred on a pixel centre.

    Row/column ``m`` of this grid has the coordinate of image pixel ``m - size // 2``, so a window
    ``[size//2 - n : size//2 - n + size]`` gives radius and angle around image pixel-offset ``n``:
    a head placed at a whole-pixel offset reuses the cached grid (no arctan2 per slice), and an
    in-plane rotation is a shift of the angle tables.
    """
    h = size // 2
    g = ((np.arange(2 * size) - h - (size - 1) / 2.0) * pixel_mm).astype(np.float32)
    x, y = g[None, :], g[:, None]
    r = np.sqrt(x * x + y * y)
    theta = np.arctan2(y, x)
    ib = ((theta + np.pi) * (N_ANGLE_BINS / (2 * np.pi))).astype(np.int16)
    np.minimum(ib, N_ANGLE_BINS - 1, out=ib)
    r.setflags(write=False)
    ib.setflags(write=False)
    return r, ib


def smooth_field_window(
    rng: np.random.Generator, size: int, pixel_mm: float, scale_mm: float, rows: slice, cols: slice
) -> np.ndarray:
    """A random field with unit variance and correlation length ~``scale_mm`` (float32) on the
    window ``[rows, cols]`` of a size² image, without computing the pixels outside the window."""
    n, idx, w = _taps(size, float(pixel_mm), round(float(scale_mm), 3))
    f = rng.standard_normal((n, n), dtype=np.float32)
    ic, wc = idx[cols], w[cols]
    ir, wr = idx[rows], w[rows]
    g = f[:, ic[:, 0]] * wc[:, 0]
    for t in range(1, 4):
        g += f[:, ic[:, t]] * wc[:, t]
    out = g[ir[:, 0], :] * wr[:, 0, None]
    for t in range(1, 4):
        out += g[ir[:, t], :] * wr[:, t, None]
    return out
