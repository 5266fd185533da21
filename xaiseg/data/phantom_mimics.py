"""Hemorrhage mimics of the head-CT phantom: bright things that are not blood.

A classifier trained on a phantom where "something bright inside the skull" always means blood
learns exactly that, and calls every real slice positive (calcified choroid plexus, skull base,
beam hardening). So the phantom puts these on slices with and without hemorrhage alike, at the
same rates (they carry no information about the label):

- physiological calcifications (per head): choroid plexus in the ventricular trigones, pineal
  gland, falx plaques, basal ganglia; 100-600 HU, 1-4 mm, i.e. 60-200 HU after partial volume;
- a hyperdense superior sagittal sinus (45-65 HU, posterior midline against the inner table);
- bone edges (per slice): small ridges of the inner table and sphenoid wings projecting into
  the brain, more at the skull base; they are bone, not brain (excluded from the brain mask).

Streaks, beam hardening and partial-volume skull are acquisition effects (phantom_acquisition).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .phantom_geometry import PINEAL_Z, BIN_T, bump, ellipse_frac, f32, soft, wrap

_CALCIFICATION_P = {"choroid": 0.6, "pineal": 0.5, "falx": 0.25, "basal_ganglia": 0.1}


@dataclass(frozen=True)
class Calcification:
    """A small dense ellipsoid in the head frame (mm; z relative)."""

    kind: str
    x: float
    y: float
    zc: float
    hz: float
    rx: float
    ry: float
    hu: float


def sample_calcifications(rng: np.random.Generator, ventricle: tuple, atrophy: float, b_mm: float) -> tuple:
    """The physiological calcifications of one head (each kind with its own probability)."""
    vx, vy, vlr, vap, vdiv = ventricle
    out = []
    for kind, p in _CALCIFICATION_P.items():
        if rng.random() >= p:
            continue
        hu = float(rng.uniform(100.0, 600.0))
        r = float(rng.uniform(1.0, 4.0))
        if kind == "choroid":  # both trigones, the posterior part of the lateral ventricles
            for side in (-1, 1):
                x = side * (vx * atrophy**0.5 + math.sin(vdiv) * 0.6 * vap)
                out.append(Calcification(kind, x, vy + 0.6 * vap, 0.57, 0.05, r, 1.3 * r, hu))
        elif kind == "pineal":
            out.append(Calcification(kind, 0.0, vy + 16.0, float(np.mean(PINEAL_Z)), 0.04, r, r, hu))
        elif kind == "falx":
            y = float(rng.uniform(-0.55, 0.55)) * b_mm * 0.8
            out.append(Calcification(kind, 0.0, y, float(rng.uniform(0.5, 0.85)), 0.05, 0.8, 2.0 * r + 2.0, hu))
        else:
            for side in (-1, 1):
                x = side * (vx * atrophy**0.5 + vlr * atrophy + 8.0)
                out.append(Calcification(kind, x, vy + 2.0, 0.47, 0.04, 0.8 * r, 1.5 * r, 0.5 * hu))
    return tuple(out)


def _calcifications(st, px: float) -> None:
    fr = st.frame
    for c in st.head.calcifications:
        prof = bump(st.z, c.zc - c.hz, c.zc + c.hz)
        if prof <= 0:
            continue
        win = fr.roi(c.x, c.y, max(c.rx, c.ry) + 2.0)
        if win is None:
            continue
        xp, yp = fr.head_xy(win)
        frac = ellipse_frac(xp, yp, c.x, c.y, max(0.3, c.rx * prof), max(0.3, c.ry * prof), px) * (st.din[win] > 2.0)
        sub = st.brain_hu[win]
        sub += (f32(c.hu) - sub) * frac


def _sagittal_sinus(st, rng: np.random.Generator, px: float) -> None:
    """A hyperdense superior sagittal sinus: a small triangle at the posterior midline."""
    if st.z < 0.4 or rng.random() >= 0.5:
        return
    fr = st.frame
    r_in = float(np.interp(wrap(np.float32(math.pi / 2 + st.head.angle)), BIN_T, st.tables.r_in, period=2 * np.pi))
    size = float(rng.uniform(3.0, 6.0))
    win = fr.roi(0.0, r_in - size / 2, size + 2.0)
    if win is None:
        return
    xp, yp = fr.head_xy(win)
    depth = f32(r_in) - yp  # mm in front of the inner table
    tri = soft(np.minimum(f32(size) - depth - np.abs(xp) * f32(1.5), depth), px)
    sub = st.brain_hu[win]
    sub += (f32(rng.uniform(45.0, 65.0)) - sub) * tri


def _bone_edges(st, rng: np.random.Generator, px: float, strength: float) -> None:
    """Ridges of the inner table (and sphenoid wings at the skull base) reaching into the brain."""
    rate = strength * (0.5 + 2.0 * max(0.0, 0.42 - st.z) / 0.42)
    fr = st.frame
    for _ in range(int(rng.poisson(rate))):
        th = float(rng.uniform(-math.pi, math.pi))
        if st.z < 0.42 and rng.random() < 0.6:  # sphenoid wings / petrous apex: anterolateral
            th = -math.pi / 2 + float(rng.choice([-1, 1])) * float(rng.uniform(0.4, 1.2))
        r_in = float(np.interp(wrap(np.float32(th + st.head.angle)), BIN_T, st.tables.r_in, period=2 * np.pi))
        reach, half_w = float(rng.uniform(1.0, 4.0)), float(rng.uniform(1.5, 5.0))
        cx, cy = r_in * math.cos(th), r_in * math.sin(th)
        win = fr.roi(cx, cy, reach + half_w + 2.0)
        if win is None:
            continue
        xp, yp = fr.head_xy(win)
        bone = ellipse_frac(xp, yp, cx, cy, half_w if abs(math.sin(th)) > 0.7 else reach,
                            reach if abs(math.sin(th)) > 0.7 else half_w, px)
        sub = st.brain_hu[win]
        sub += (f32(rng.uniform(400.0, 1100.0)) - sub) * bone
        st.not_brain.append((win, bone >= 0.5))


def paint_mimics(st, rng: np.random.Generator, strength: float = 1.0) -> None:
    """Calcifications, a dense sinus and bone edges into ``st.brain_hu`` (label-independent)."""
    px = st.frame.px
    _calcifications(st, px)
    if strength > 0:
        _sagittal_sinus(st, rng, px)
        _bone_edges(st, rng, px, strength)

