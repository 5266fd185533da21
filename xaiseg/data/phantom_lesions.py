"""Hemorrhages of the head-CT phantom: the five subtypes as 3-D objects, their mass effect.

- epidural: biconvex lens against the inner table; subdural: long thin crescent along it;
  intraparenchymal: irregular blob with a darker oedema rim; intraventricular: blood layering in
  the dependent, posterior part of the lateral ventricles; subarachnoid: blood filling the sulci
  and the cortical CSF of a region.
- Density: acute blood 50-90 HU; with probability ``SUBACUTE_P`` a subacute bleed, 38-52 HU (close
  to grey matter: "bright" alone does not find it).
- Mass effect: extra-axial collections and large parenchymal bleeds push the midline (falx, third
  ventricle, lateral ventricles) away and squeeze the ventricle on their side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .constants import LABELS, SUBTYPES
from ._fields import ANGLE_BIN_CENTRES
from .phantom_anatomy import Head, SliceState
from .phantom_geometry import BIN_T, HEAD_HEIGHT_MM, bump, f32, harmonic, soft, wrap

SUBACUTE_P = 0.15  # share of lesions drawn subacute (lower density)

# how often each subtype is drawn for a positive subject (roughly the mix of PhysioNet CT-ICH);
# the writer's volumes and the training stream's slices both draw from it
SUBTYPE_WEIGHTS = {
    "epidural": 0.15,
    "intraparenchymal": 0.25,
    "intraventricular": 0.15,
    "subarachnoid": 0.20,
    "subdural": 0.25,
}


@dataclass(frozen=True)
class Lesion:
    """One hemorrhage: a 3-D object (its cross-section shrinks to zero at ``zc +- hz``)."""

    subtype: str
    zc: float
    hz: float
    blood_hu: float
    params: dict = field(default_factory=dict)


def _blood(rng: np.random.Generator, lo: float, hi: float) -> float:
    if rng.random() < SUBACUTE_P:
        return float(rng.uniform(38.0, 52.0))
    return float(rng.uniform(lo, hi))


def _extra_axial(rng: np.random.Generator, subtype: str, s: float) -> tuple[dict, float, tuple[float, float], float]:
    p: dict = {}
    if subtype == "epidural":
        # lateral (temporo-parietal) most often, sometimes frontal or occipital
        p["theta"] = rng.choice([0.0, math.pi]) + rng.normal(0.0, 0.55)
        p["half_arc_mm"] = rng.uniform(12.0, 30.0) * s
        p["thick_mm"] = rng.uniform(4.0, 15.0) * s
        return p, rng.uniform(10.0, 22.0) * s, (0.25, 0.85), _blood(rng, 55.0, 85.0)
    p["theta"] = rng.choice([0.0, math.pi]) + rng.normal(0.0, 0.35)
    p["half_arc_mm"] = rng.uniform(35.0, 80.0) * s
    p["thick_mm"] = rng.uniform(2.0, 12.0) * s
    return p, rng.uniform(20.0, 40.0) * s, (0.3, 0.85), _blood(rng, 50.0, 80.0)


def sample_lesion(
    rng: np.random.Generator,
    subtype: str,
    head: Head,
    zc: float | None = None,
    lesion_scale: float = 1.0,
) -> Lesion:
    """Draw one hemorrhage of ``subtype``; ``lesion_scale`` multiplies its linear size."""
    if subtype not in SUBTYPES:
        raise ValueError(f"unknown hemorrhage subtype {subtype!r}; expected one of {SUBTYPES}")
    s = float(lesion_scale)
    p: dict = {}
    if subtype in ("epidural", "subdural"):
        p, hz_mm, z_range, blood = _extra_axial(rng, subtype, s)
    elif subtype == "intraparenchymal":
        p["theta"] = rng.uniform(-math.pi, math.pi)
        p["depth_frac"] = rng.uniform(0.15, 0.65)  # centre at this fraction of the inner radius
        p["radius_mm"] = rng.uniform(3.0, 15.0) * s
        p["harmonics"] = rng.normal(0.0, 0.10, (4, 2))
        p["oedema_mm"] = rng.uniform(1.0, 6.0) * math.sqrt(s)
        p["oedema_hu"] = rng.uniform(5.0, 13.0)
        hz_mm = p["radius_mm"] * rng.uniform(0.8, 1.3)
        z_range = (0.3, 0.85)
        blood = _blood(rng, 55.0, 90.0)
    elif subtype == "intraventricular":
        p["sides"] = [(-1,), (1,), (-1, 1)][int(rng.integers(3))]
        p["fill"] = min(1.0, rng.uniform(0.2, 0.55) * s)  # fraction of the AP length, from the back
        hz_mm = rng.uniform(10.0, 25.0) * s
        z_range = (0.5, 0.68)
        blood = _blood(rng, 50.0, 75.0)
    else:  # subarachnoid
        p["theta"] = rng.uniform(-math.pi, math.pi)
        p["depth_mm"] = rng.choice([0.0, 12.0])  # convexity, or deeper (sylvian-like)
        p["radius_mm"] = rng.uniform(12.0, 30.0) * s
        p["widen"] = 1.4 + 0.35 * max(0.0, s - 1.0)  # blood distends the sulci
        hz_mm = rng.uniform(8.0, 18.0) * s
        z_range = (0.35, 0.9)
        blood = _blood(rng, 55.0, 80.0)
    if zc is None:
        zc = rng.uniform(*z_range)
    return Lesion(subtype=subtype, zc=float(zc), hz=float(hz_mm / HEAD_HEIGHT_MM), blood_hu=float(blood), params=p)


def draw_lesions(rng: np.random.Generator, head: Head, lesion_scale: float = 1.0) -> list[Lesion]:
    """The hemorrhages of one positive subject: one to three of different subtypes."""
    names = list(SUBTYPE_WEIGHTS)
    probs = np.array([SUBTYPE_WEIGHTS[n] for n in names])
    n = 1 + int(rng.random() < 0.35) + int(rng.random() < 0.10)
    chosen = rng.choice(len(names), size=n, replace=False, p=probs / probs.sum())
    return [sample_lesion(rng, names[i], head, lesion_scale=lesion_scale) for i in sorted(chosen)]


def mass_effect(lesions: Sequence[Lesion], z: float) -> tuple[float, tuple[float, float]]:
    """Midline shift (mm, head frame x: + towards the patient's left) and the squeeze factor of
    the (right, left) lateral ventricle caused by the lesions at level z."""
    shift = 0.0
    for les in lesions:
        prof = bump(z, les.zc - les.hz, les.zc + les.hz)
        p = les.params
        if prof <= 0 or "theta" not in p:
            continue
        side = math.cos(p["theta"])  # > 0: lesion on the patient's left (head frame x)
        if les.subtype in ("epidural", "subdural"):
            push = 0.6 * p["thick_mm"] * prof
        elif les.subtype == "intraparenchymal":
            push = 0.35 * p["radius_mm"] * prof
        else:
            continue
        shift -= side * max(0.0, push - 2.0)  # small collections do not shift the midline
    shift = float(np.clip(shift, -12.0, 12.0))
    sq = 1.0 - 0.5 * min(1.0, abs(shift) / 10.0)
    # the ventricle on the lesion's side is squeezed; the shift points away from the lesion
    return shift, ((sq, 1.0) if shift > 0 else (1.0, sq))


def _r_in_at(st: SliceState, theta_head: float) -> float:
    return float(np.interp(wrap(np.float32(theta_head + st.head.angle)), BIN_T, st.tables.r_in, period=2 * np.pi))


def _extra_axial_frac(st: SliceState, les: Lesion, prof: float):
    p, fr, px = les.params, st.frame, st.frame.px
    th0 = float(p["theta"])
    r0 = _r_in_at(st, th0)
    thick_max = min(p["thick_mm"] * prof, 0.4 * min(st.tables.a_in, st.tables.b_in))
    win = fr.roi(r0 * math.cos(th0), r0 * math.sin(th0), p["half_arc_mm"] + thick_max + 2.0)
    if win is None:
        return None, None
    theta_h = ANGLE_BIN_CENTRES[fr.ib[win]] - f32(st.head.angle)
    arc = np.abs(wrap(theta_h - f32(th0))) * (st.tables.r_in.astype(f32)[fr.ib[win]] * f32(1.0 / p["half_arc_mm"]))
    # lens: elliptic thickness profile; crescent: flat, tapering only near its ends
    if les.subtype == "epidural":
        prof_t = np.sqrt(np.clip(1.0 - arc * arc, 0.0, None))
    else:
        prof_t = np.clip(1.0 - arc**3, 0.0, None)
    thick = f32(thick_max) * prof_t
    d = st.din[win]
    return win, np.minimum(soft(thick - d, px), soft(d, px)) * (thick > 0)


def _parenchymal_frac(st: SliceState, les: Lesion, prof: float):
    p, fr, px = les.params, st.frame, st.frame.px
    th0 = float(p["theta"])
    rc = _r_in_at(st, th0) * p["depth_frac"]
    cx, cy = rc * math.cos(th0), rc * math.sin(th0)
    rad0 = p["radius_mm"] * prof
    win = fr.roi(cx, cy, rad0 * 1.5 + p["oedema_mm"] + 2.0)
    if win is None:
        return None, None
    xp, yp = fr.head_xy(win)
    dx, dy = xp - f32(cx), yp - f32(cy)
    rr = np.sqrt(dx * dx + dy * dy)
    rad = f32(rad0) * (f32(1.0) + harmonic(np.arctan2(dy, dx), p["harmonics"], 2) + f32(0.06) * st.texture[win])
    d = st.din[win]
    rim = soft(rad + f32(p["oedema_mm"]) - rr, max(px, 2.0)) * (d > 0)  # vasogenic oedema: darker
    st.brain_hu[win] -= f32(p["oedema_hu"]) * rim
    return win, soft(rad - rr, px) * soft(d - f32(2.0), px)


def _ventricular_frac(st: SliceState, les: Lesion):
    if not st.vent_frac:
        return None, None
    frac = np.zeros(st.vent_frac[-1].shape, dtype=f32)
    level = f32(1.0 - 2.0 * les.params["fill"])  # v runs from -1 (front) to 1 (back)
    for side in les.params["sides"]:
        # blood layers in the dependent (posterior) part, a sharp fluid level
        np.maximum(frac, st.vent_frac[side] * soft((st.vent_v[side] - level) * f32(10.0), 1.0), out=frac)
    return st.vent_win, frac


def _subarachnoid_frac(st: SliceState, les: Lesion, prof: float):
    p, fr, px = les.params, st.frame, st.frame.px
    th0 = float(p["theta"])
    rc = _r_in_at(st, th0) - p["depth_mm"]
    cx, cy = rc * math.cos(th0), rc * math.sin(th0)
    rad0 = p["radius_mm"] * prof
    win = fr.roi(cx, cy, rad0 + 3.0)
    if win is None:
        return None, None
    xp, yp = fr.head_xy(win)
    dist = np.sqrt((xp - f32(cx)) ** 2 + (yp - f32(cy)) ** 2)
    region = np.clip((f32(rad0) - dist) * f32(1 / 3.0), 0.0, 1.0)
    wide = f32(st.sulcal_width * p["widen"])
    sulcal = np.clip((wide - st.sulc_abs[win]) * (1.0 / (0.5 * wide)), 0.0, 1.0) * st.depth_taper[win]
    return win, region * np.maximum(sulcal, st.csf_surface[win]) * soft(st.din[win], px)


def paint_lesions(st: SliceState, lesions: Sequence[Lesion]) -> tuple[np.ndarray, np.ndarray]:
    """Blood into ``st.brain_hu``; returns the crop's hemorrhage mask (fraction >= 0.5) and the
    labels (a subtype is 1 iff its own mask is non-empty on this slice)."""
    mask = np.zeros(st.frame.shape, dtype=bool)
    labels = np.zeros(len(LABELS), dtype=np.float32)
    for les in lesions:
        prof = bump(st.z, les.zc - les.hz, les.zc + les.hz)
        if prof <= 0:
            continue
        if les.subtype in ("epidural", "subdural"):
            win, frac = _extra_axial_frac(st, les, prof)
        elif les.subtype == "intraparenchymal":
            win, frac = _parenchymal_frac(st, les, prof)
        elif les.subtype == "intraventricular":
            win, frac = _ventricular_frac(st, les)
        else:
            win, frac = _subarachnoid_frac(st, les, prof)
        if win is None:
            continue
        sub = st.brain_hu[win]
        sub += (f32(les.blood_hu) + f32(3.0) * st.texture[win] - sub) * frac
        m = frac >= 0.5
        if m.any():
            mask[win] |= m
            labels[SUBTYPES.index(les.subtype)] = 1.0
    labels[-1] = labels[:-1].max()
    return mask, labels
