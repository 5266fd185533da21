"""Shared geometry of the head-CT phantom: units, z ranges, partial-volume helpers, the pixel frame.

The anatomy is described in millimetres and in a relative level ``z`` in [0, 1] (0: skull base,
1: vertex; 1 unit = ``HEAD_HEIGHT_MM``). Every other phantom module (anatomy, lesions, mimics,
acquisition) builds on these helpers, so they live apart from all of them (no import circle).
"""
from __future__ import annotations

import math

import numpy as np

from ._fields import ANGLE_BIN_CENTRES, polar_grid

FOV_MM = 230.0  # default in-plane field of view: 0.449 mm pixels at 512², 1.80 mm at 128²
HEAD_HEIGHT_MM = 160.0  # z = 0..1 spans this many mm (32 slices of 5 mm)
REFERENCE_PIXEL_MM = FOV_MM / 512  # pixel noise is specified at this pixel size

# z ranges (relative) where structures exist
BRAIN_Z = (0.0, 0.97)
LATERAL_VENTRICLE_Z = (0.44, 0.74)
THIRD_VENTRICLE_Z = (0.36, 0.50)
FOURTH_VENTRICLE_Z = (0.12, 0.30)
FISSURE_Z = 0.34  # the interhemispheric fissure exists above this level
SKULL_BASE_Z = 0.32  # petrous ridges and the clivus/sphenoid below this level
FRONTAL_SINUS_Z = (0.20, 0.42)
ORBIT_Z = (0.10, 0.30)
TENTORIUM_Z = (0.22, 0.40)
PINEAL_Z = (0.40, 0.50)

f32 = np.float32
BIN_T = ANGLE_BIN_CENTRES.astype(np.float64)
_KMAX = 8
_COS_KT = np.cos(np.arange(_KMAX + 1)[:, None] * BIN_T[None, :])  # (k, bins)
_SIN_KT = np.sin(np.arange(_KMAX + 1)[:, None] * BIN_T[None, :])


def head_scale(z: float) -> float:
    """Relative size of the head's cross-section at level z (1 at the widest level)."""
    return math.sqrt(max(0.04, 1.0 - ((z - 0.42) / 0.68) ** 2))


def bump(z: float, lo: float, hi: float) -> float:
    """0 outside [lo, hi], 1 in the middle, elliptic profile."""
    c, h = (lo + hi) / 2, (hi - lo) / 2
    return math.sqrt(max(0.0, 1.0 - ((z - c) / h) ** 2))


def soft(d: np.ndarray, px: float) -> np.ndarray:
    """Partial-volume fraction of a pixel whose centre is at signed distance d (mm) inside."""
    return np.clip(d * (1.0 / px) + 0.5, 0.0, 1.0)


def harmonic(theta: np.ndarray, coef: np.ndarray, first_k: int) -> np.ndarray:
    out = np.zeros_like(theta)
    for i, (c, s) in enumerate(coef):
        k = first_k + i
        out += c * np.cos(k * theta) + s * np.sin(k * theta)
    return out


def table_harmonic(coef: np.ndarray, first_k: int, angle: float) -> np.ndarray:
    """``harmonic(bin_angles - angle, coef, first_k)`` on the angle bins, from a cached basis:
    cos(k(t - a)) = cos kt cos ka + sin kt sin ka (rotating the coefficients, not the bins)."""
    ks = np.arange(first_k, first_k + len(coef))
    c, s = coef[:, 0], coef[:, 1]
    ca, sa = np.cos(ks * angle), np.sin(ks * angle)
    return (c * ca - s * sa) @ _COS_KT[ks] + (c * sa + s * ca) @ _SIN_KT[ks]


def wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.float32(np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)


def ellipse_frac(xp: np.ndarray, yp: np.ndarray, cx: float, cy: float, rx: float, ry: float, px: float) -> np.ndarray:
    """Partial-volume fraction of an axis-aligned ellipse (head frame, mm)."""
    e = np.sqrt(((xp - f32(cx)) * f32(1 / rx)) ** 2 + ((yp - f32(cy)) * f32(1 / ry)) ** 2)
    return soft((1.0 - e) * f32(min(rx, ry)), px)


class Frame:
    """Where the head sits on the pixel grid: crop window, head-frame coordinates, ROIs.

    The head centre sits on a whole-pixel offset, so radius and angle come from a cached grid;
    the in-plane rotation is applied to the angle tables and, for the small regions that need
    Cartesian head-frame coordinates (ventricles, lesions, fissure), to those coordinates.
    """

    def __init__(self, size: int, px: float, angle: float, offset_mm: tuple[float, float], r_out_t: np.ndarray):
        self.size, self.px = size, px
        lim = size // 4
        self.nx = int(np.clip(round(offset_mm[0] / px), -lim, lim))
        self.ny = int(np.clip(round(offset_mm[1] / px), -lim, lim))
        self.ca, self.sa = math.cos(angle), math.sin(angle)
        jc, ic = (size - 1) / 2 + self.nx, (size - 1) / 2 + self.ny
        ex, ey = r_out_t * np.cos(BIN_T) / px, r_out_t * np.sin(BIN_T) / px
        self.c0 = max(0, int(math.floor(jc + ex.min())) - 2)
        self.c1 = min(size, int(math.ceil(jc + ex.max())) + 3)
        self.r0 = max(0, int(math.floor(ic + ey.min())) - 2)
        self.r1 = min(size, int(math.ceil(ic + ey.max())) + 3)
        self.rows, self.cols = slice(self.r0, self.r1), slice(self.c0, self.c1)
        r_big, ib_big = polar_grid(size, px)
        my, mx = size // 2 - self.ny, size // 2 - self.nx
        self.r = r_big[my + self.r0 : my + self.r1, mx + self.c0 : mx + self.c1]
        self.ib = ib_big[my + self.r0 : my + self.r1, mx + self.c0 : mx + self.c1]
        idx = np.arange(size, dtype=np.float32)
        self.xs = ((idx - (size - 1) / 2 - self.nx) * px)[self.cols]  # head-centred, image axes
        self.ys = ((idx - (size - 1) / 2 - self.ny) * px)[self.rows]

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0, self.c1 - self.c0

    def roi(self, hx: float, hy: float, half_x: float, half_y: float | None = None) -> tuple[slice, slice] | None:
        """Crop-local window around head-frame point (hx, hy), half-size in mm (image axes)."""
        half_y = half_x if half_y is None else half_y
        x = self.ca * hx - self.sa * hy
        y = self.sa * hx + self.ca * hy
        j = x / self.px + (self.size - 1) / 2 + self.nx - self.c0
        i = y / self.px + (self.size - 1) / 2 + self.ny - self.r0
        hj, hi = half_x / self.px + 2, half_y / self.px + 2
        h, w = self.shape
        cs = slice(max(0, int(math.floor(j - hj))), min(w, int(math.ceil(j + hj)) + 1))
        rs = slice(max(0, int(math.floor(i - hi))), min(h, int(math.ceil(i + hi)) + 1))
        if cs.start >= cs.stop or rs.start >= rs.stop:
            return None
        return rs, cs

    def head_xy(self, win: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """Head-frame coordinates (x' to the patient's left, y' posterior) on a crop window."""
        xs, ys = self.xs[win[1]][None, :], self.ys[win[0]][:, None]
        ca, sa = np.float32(self.ca), np.float32(self.sa)
        return ca * xs + sa * ys, ca * ys - sa * xs
