"""Anatomy of the head-CT phantom: the subject's head (:class:`Head`, drawn by :func:`sample_head`)
and the layers of one slice built from it.

Domain randomisation (SynthSeg, Billot et al. 2023): every anatomical knob is drawn from a range
wider than the usual adult head, so a classifier cannot lean on one head shape, skull or brain
contrast. The knobs (docs/data.md lists them with their ranges):

- skull thickness, shape (harmonics), head size, rotation and position (a head may leave the
  field of view: partial coverage);
- brain: grey/white contrast, CSF value, sulcal pattern, atrophy (sulci and ventricles),
  ventricle shape and position, falx, tentorium;
- skull base (petrous ridges, clivus/sphenoid with its sinus, mastoid air cells), orbits below
  the frontal lobes, a frontal sinus;
- physiological calcifications (choroid plexus, pineal, falx): see phantom_mimics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._fields import smooth_field_window
from .phantom_geometry import (BIN_T, FISSURE_Z, FOURTH_VENTRICLE_Z, FRONTAL_SINUS_Z, LATERAL_VENTRICLE_Z, ORBIT_Z,
                               SKULL_BASE_Z, TENTORIUM_Z, THIRD_VENTRICLE_Z, Frame, bump, ellipse_frac, f32,
                               head_scale, soft, table_harmonic, wrap)


@dataclass(frozen=True)
class Head:
    """Subject-level anatomy and tissue values (everything that must stay the same along z)."""

    a_mm: float  # outer left-right semi-axis at the widest level
    b_mm: float  # outer antero-posterior semi-axis at the widest level
    angle: float  # in-plane rotation (radians)
    offset_mm: tuple[float, float]  # head centre relative to the image centre (x right, y down)
    shape_harmonics: np.ndarray  # (k, 2) cos/sin coefficients, k = 2, 3, ...
    skull_mm: float
    skull_harmonics: np.ndarray
    scalp_mm: float
    atrophy: float  # widens sulci and ventricles
    ventricle: tuple[float, float, float, float, float]  # x offset, y offset, lr, ap, divergence
    white_hu: float
    grey_delta_hu: float
    csf_hu: float
    scalp_hu: float
    noise_hu: float  # pixel noise standard deviation at REFERENCE_PIXEL_MM (without an Acquisition)
    calcifications: tuple = ()  # phantom_mimics.Calcification, physiological, on any slice
    mastoid_air: float = 0.5  # 0..1: how pneumatised the mastoids are


def sample_head(rng: np.random.Generator) -> Head:
    """Draw one subject's anatomy (ranges wider than a typical adult head, on purpose)."""
    from .phantom_mimics import sample_calcifications

    a = rng.uniform(64.0, 82.0)
    head = Head(
        a_mm=a,
        b_mm=a * rng.uniform(1.10, 1.35),
        angle=rng.uniform(-0.30, 0.30),
        offset_mm=(rng.uniform(-15, 15), rng.uniform(-20, 12)),
        shape_harmonics=rng.normal(0.0, 1.0, (4, 2)) * (0.025 / np.arange(1, 5))[:, None],
        skull_mm=rng.uniform(4.0, 9.0),
        skull_harmonics=rng.normal(0.0, 0.07, (5, 2)),
        scalp_mm=rng.uniform(3.0, 8.0),
        atrophy=rng.uniform(0.65, 1.9),
        ventricle=(
            rng.uniform(5.5, 9.5),
            rng.uniform(-6.0, 6.0),
            rng.uniform(2.5, 6.0),
            rng.uniform(17.0, 28.0),
            rng.uniform(0.08, 0.28),
        ),
        white_hu=rng.uniform(22.0, 32.0),
        grey_delta_hu=rng.uniform(6.0, 13.0),
        csf_hu=rng.uniform(0.0, 14.0),
        scalp_hu=rng.uniform(10.0, 50.0),
        noise_hu=rng.uniform(5.0, 8.0),
    )
    calcs = sample_calcifications(rng, head.ventricle, head.atrophy, head.b_mm)
    return Head(**{**head.__dict__, "calcifications": calcs, "mastoid_air": float(rng.uniform(0, 1))})


@dataclass
class Tables:
    """Per-angle radii (mm) of the skin, outer and inner table at one level."""

    r_out: np.ndarray
    skull: np.ndarray
    r_in: np.ndarray
    a_in: float  # inner semi-axes (mm)
    b_in: float
    frontal_sinus: float  # 0..1 how much frontal sinus this level has


def skull_tables(head: Head, z: float) -> Tables:
    """Radius tables at level z; bins are image angles, the anatomy is evaluated at the head-frame
    angle (rotation = shift of the tables)."""
    th = BIN_T - head.angle
    hs = head_scale(z)
    a, b = head.a_mm * hs, head.b_mm * hs
    r_ell = a * b / np.sqrt((b * np.cos(th)) ** 2 + (a * np.sin(th)) ** 2)
    r_out = r_ell * (1.0 + table_harmonic(head.shape_harmonics, 2, head.angle))
    base = 1.0 + 0.4 * max(0.0, 0.3 - z) / 0.3  # thicker towards the skull base
    cos2 = table_harmonic(np.array([[1.0, 0.0]]), 2, head.angle)  # cos(2 th)
    skull = head.skull_mm * base * (1.0 - 0.15 * cos2) * (1.0 + table_harmonic(head.skull_harmonics, 1, head.angle))
    fs = bump(z, *FRONTAL_SINUS_Z)
    if fs > 0:  # the frontal bone thickens around the frontal sinus
        skull = skull + 9.0 * fs * np.exp(-((wrap(th + np.pi / 2) / 0.3) ** 4))
    skull = np.maximum(skull, 3.0)
    r_in = r_out - head.scalp_mm - skull
    return Tables(r_out, skull, r_in, float(np.max(np.abs(r_in * np.cos(th)))), float(np.max(np.abs(r_in * np.sin(th)))), fs)


@dataclass
class SliceState:
    """One slice under construction, on the head's crop window (``frame.rows, frame.cols``).

    The layers fill it in order: anatomy (brain tissue), lesions, mimics, then the skull and
    scalp are composed around it; ``brain_hu`` holds the intracranial HU.
    """

    head: Head
    z: float
    frame: Frame
    tables: Tables
    din: np.ndarray  # depth below the inner table (mm; > 0 intracranial)
    texture: np.ndarray
    sulc_abs: np.ndarray
    sulcal_width: float
    depth_taper: np.ndarray
    csf_surface: np.ndarray
    brain_hu: np.ndarray | None = None
    vent_frac: dict = field(default_factory=dict)
    vent_v: dict = field(default_factory=dict)
    vent_win: tuple | None = None
    not_brain: list = field(default_factory=list)  # (window, bool array): bone inside the inner table


def start_slice(head: Head, z: float, rng: np.random.Generator, size: int, px: float) -> SliceState:
    tables = skull_tables(head, z)
    fr = Frame(size, px, head.angle, head.offset_mm, tables.r_out)
    din = tables.r_in.astype(f32)[fr.ib] - fr.r
    texture = smooth_field_window(rng, size, px, 2.5, fr.rows, fr.cols)
    sulc_abs = np.abs(smooth_field_window(rng, size, px, 4.0, fr.rows, fr.cols))
    # per-slice angular variation of sulcal depth
    sdepth = (12.0 + 8.0 * z) * (1.0 + table_harmonic(rng.normal(0, 0.12, (4, 2)), 1, head.angle))
    depth_taper = np.clip((sdepth.astype(f32)[fr.ib] - din) * f32(1 / 3.0), 0.0, 1.0)
    csf_surface = np.clip((f32(0.9 * head.atrophy) - din) * f32(1 / 0.8), 0.0, 1.0)
    return SliceState(head, z, fr, tables, din, texture, sulc_abs, 0.16 * head.atrophy, depth_taper, csf_surface)


def _ventricles(st: SliceState, csf: np.ndarray, grey: np.ndarray, shift_mm: float, compress: tuple[float, float]) -> None:
    """Lateral ventricles (a banana per side) and the deep grey nuclei beside them; mass effect
    shifts them by ``shift_mm`` and squeezes each side by ``compress[side]``."""
    head, fr, px, at = st.head, st.frame, st.frame.px, st.head.atrophy
    vx, vy, vlr, vap, vdiv = head.ventricle
    lv = bump(st.z, *LATERAL_VENTRICLE_Z)
    vwin = fr.roi(shift_mm, vy, vap + 30.0)
    if lv <= 0 or vwin is None:
        return
    st.vent_win = vwin
    xp, yp = fr.head_xy(vwin)
    xp = xp - f32(shift_mm)
    c_sub, g_sub = csf[vwin], grey[vwin]
    ap = vap * at**0.3 * (0.35 + 0.65 * lv)
    for side in (-1, 1):
        # narrow frontal horn near the septum, wider trigone behind, the two diverging posteriorly
        ang = side * vdiv
        cu, su = f32(math.cos(ang)), f32(math.sin(ang))
        dx, dy = xp - f32(side * vx * at**0.5), yp - f32(vy)
        u = cu * dx - su * dy
        v = (su * dx + cu * dy) * f32(1.0 / ap)
        squeeze = compress[(side + 1) // 2]
        lr = f32(vlr * at * (0.3 + 0.7 * lv) * squeeze) * np.clip(f32(0.85) + f32(0.4) * v, 0.55, 1.2)
        e = np.sqrt((u / lr) ** 2 + v * v)
        frac = soft((1.0 - e) * lr, px) * soft(f32(side) * xp - f32(1.0), px)  # septum
        st.vent_frac[side], st.vent_v[side] = frac, v
        np.maximum(c_sub, frac, out=c_sub)
    for side in (-1, 1):  # caudate/lentiform/thalamus: faint grey lateral to the ventricles
        dx = xp - f32(side * (vx * at**0.5 + vlr * at + 10.0))
        e = np.sqrt((dx * f32(1 / 7.0)) ** 2 + ((yp - f32(vy + 2.0)) * f32(1 / 15.0)) ** 2)
        np.maximum(g_sub, soft((1.0 - e) * 7.0, 3.0) * f32(0.6 * min(1.0, 2 * lv)), out=g_sub)


def _midline_csf(st: SliceState, csf: np.ndarray, shift_mm: float) -> None:
    """Third and fourth ventricles."""
    fr, px, at, vy = st.frame, st.frame.px, st.head.atrophy, st.head.ventricle[1]
    tv = bump(st.z, *THIRD_VENTRICLE_Z)
    win = fr.roi(shift_mm, vy + 4.0, 20.0)
    if tv > 0 and win is not None:
        xp, yp = fr.head_xy(win)
        np.maximum(csf[win], ellipse_frac(xp, yp, shift_mm, vy + 4.0, 1.6 * at, 11.0 * tv, px), out=csf[win])
    fv = bump(st.z, *FOURTH_VENTRICLE_Z)
    b_in = st.tables.b_in
    win = fr.roi(0.0, 0.35 * b_in, 15.0)
    if fv > 0 and win is not None:
        xp, yp = fr.head_xy(win)
        np.maximum(csf[win], ellipse_frac(xp, yp, 0.0, 0.35 * b_in, 6.0 * fv * at, 4.0 * fv, px), out=csf[win])


def brain_tissue(st: SliceState, rng: np.random.Generator, shift_mm: float = 0.0,
                 compress: tuple[float, float] = (1.0, 1.0)) -> None:
    """White matter, cortical ribbon, sulcal and ventricular CSF, falx, tentorium -> ``st.brain_hu``."""
    head, fr, px, at, w = st.head, st.frame, st.frame.px, st.head.atrophy, f32(st.sulcal_width)
    ctx = 4.0 * (1.0 + table_harmonic(rng.normal(0, 0.12, (4, 2)), 1, head.angle))  # cortical thickness
    csf = np.clip((w - st.sulc_abs) * (1.0 / (0.5 * w)), 0.0, 1.0) * st.depth_taper
    grey = np.clip((ctx.astype(f32)[fr.ib] - st.din) * f32(1 / 1.5), 0.0, 1.0)
    np.maximum(grey, np.clip((f32(3.5) * w - st.sulc_abs) * (1.0 / w), 0.0, 1.0) * st.depth_taper, out=grey)
    _ventricles(st, csf, grey, shift_mm, compress)
    _midline_csf(st, csf, shift_mm)
    np.maximum(csf, st.csf_surface, out=csf)
    brain_hu = f32(head.white_hu) + f32(head.grey_delta_hu) * grey + f32(2.0) * st.texture
    b = head.b_mm * head_scale(st.z)
    fwin = fr.roi(0.0, 0.0, 4.0 + abs(fr.sa) * b + abs(shift_mm), b + 4.0) if st.z > FISSURE_Z else None
    if fwin is not None:  # interhemispheric fissure (CSF) with the falx (a thin dense membrane)
        xp, yp = fr.head_xy(fwin)
        b_in = st.tables.b_in
        # subfalcine shift: the falx is fixed at its ends and bows most in the middle
        xp = xp - f32(shift_mm) * np.clip(1.0 - (yp / f32(b_in)) ** 2, 0.0, 1.0)
        cut = 0.0 if st.z > 0.72 else 0.4 * b_in
        along = np.clip((np.abs(yp) - f32(cut)) * f32(1 / 3.0), 0.0, 1.0)
        np.maximum(csf[fwin], soft(f32(1.1 * at) - np.abs(xp), px) * along, out=csf[fwin])
    brain_hu += (f32(head.csf_hu) - brain_hu) * csf
    if fwin is not None:
        brain_hu[fwin] += f32(25.0) * soft(f32(0.35) - np.abs(xp), px) * along
    st.brain_hu = brain_hu
    _tentorium(st)


def _tentorium(st: SliceState) -> None:
    """The tentorium: a thin dense membrane, a V opening forwards around the midbrain, posterior."""
    tn = bump(st.z, *TENTORIUM_Z)
    b_in, a_in, fr = st.tables.b_in, st.tables.a_in, st.frame
    win = fr.roi(0.0, 0.45 * b_in, 0.7 * a_in, 0.55 * b_in) if tn > 0 else None
    if win is None:
        return
    xp, yp = fr.head_xy(win)
    apex_y = (0.25 + 0.5 * tn) * b_in  # the notch narrows upwards
    for side in (-1, 1):
        d = np.abs((yp - f32(apex_y)) * f32(0.6) + f32(side) * xp * f32(0.8)) - f32(0.3)  # a line through the apex
        behind = yp > f32(0.1 * b_in)
        st.brain_hu[win] += f32(18.0 * tn) * soft(-d, fr.px) * behind


def skull_base(st: SliceState) -> None:
    """Petrous ridges (a V opening backwards) with mastoid air cells, clivus/sphenoid and its sinus."""
    sb = min(1.0, max(0.0, (SKULL_BASE_Z - st.z) / 0.15))
    a_in, b_in, fr, px = st.tables.a_in, st.tables.b_in, st.frame, st.frame.px
    bwin = fr.roi(0.0, 0.0, a_in + 2.0, b_in + 2.0) if sb > 0 else None
    if bwin is None:
        return
    xp, yp = fr.head_xy(bwin)
    bone_f = np.zeros(xp.shape, dtype=f32)
    cy = -0.05 * b_in
    for side in (-1, 1):
        x0, y0 = side * 0.8 * a_in, 0.25 * b_in  # lateral end, behind the middle
        x1, y1 = side * 7.0, cy + 4.0  # medial end, at the clivus
        half, ang = math.hypot(x1 - x0, y1 - y0) / 2, math.atan2(y1 - y0, x1 - x0)
        ca, sa = f32(math.cos(ang)), f32(math.sin(ang))
        dx, dy = xp - f32((x0 + x1) / 2), yp - f32((y0 + y1) / 2)
        width = 2.5 + 3.5 * sb
        e = np.sqrt(((ca * dx + sa * dy) * f32(1 / half)) ** 2 + ((ca * dy - sa * dx) * f32(1 / width)) ** 2)
        np.maximum(bone_f, soft((1.0 - e) * f32(width), px), out=bone_f)
    ex, ey = 7.0 + 6.0 * sb, 9.0 + 6.0 * sb
    np.maximum(bone_f, ellipse_frac(xp, yp, 0.0, cy, ex, ey, px), out=bone_f)
    sub = st.brain_hu[bwin]
    tex = st.texture[bwin]
    sub += (f32(1450.0) + f32(60.0) * tex - sub) * bone_f
    air = np.zeros_like(bone_f)
    if st.z < SKULL_BASE_Z - 0.06:  # the sphenoid sinus: air inside the sphenoid body
        air = ellipse_frac(xp, yp, 0.0, cy - 1.0, 0.55 * ex, 0.55 * ey, px)
    if st.head.mastoid_air > 0.2:  # mastoid air cells: honeycomb air at the lateral ends of the ridges
        for side in (-1, 1):
            cells = ellipse_frac(xp, yp, side * 0.72 * a_in, 0.28 * b_in, 7.0 * st.head.mastoid_air, 6.0, px)
            np.maximum(air, cells * np.clip((tex - f32(0.2)) * f32(3.0), 0.0, 1.0), out=air)
    sub += (f32(-1000.0) - sub) * air * bone_f
    st.not_brain.append((bwin, bone_f >= 0.5))


def compose_skull(st: SliceState, tables: Tables, in_frac: np.ndarray) -> np.ndarray:
    """Skull (cortical tables around the diploe, frontal sinus air), scalp and air around the brain,
    with ``tables`` (this level's, or a neighbouring level's for slice-thickness partial volume)."""
    head, fr = st.head, st.frame
    ib, px = fr.ib, fr.px
    th = BIN_T - head.angle
    d_out = tables.r_out.astype(f32)[ib] - fr.r  # depth below the skin (mm)
    d_bone = d_out - f32(head.scalp_mm)  # depth below the outer table
    u = np.clip(d_bone / tables.skull.astype(f32)[ib], 0.0, 1.0)
    diploe = np.clip(1.0 - np.abs(u - f32(0.5)) * f32(1 / 0.28), 0.0, 1.0)
    crop = f32(1750.0) - f32(850.0) * diploe + f32(60.0) * st.texture  # bone
    fs = tables.frontal_sinus
    if fs > 0:  # air cells of the frontal sinus inside the thickened frontal bone
        # a lens in (angle, depth): widest in the middle of the bone, lobulated by the texture
        ang2 = ((wrap(th + np.pi / 2) / (0.22 * fs + 1e-6)) ** 2).astype(f32)[ib]
        lens = f32(1.0) - ang2 - ((u - f32(0.5)) * f32(1 / 0.32)) ** 2 + f32(0.25) * st.texture
        crop += (f32(-1000.0) - crop) * np.clip(lens * f32(4.0), 0.0, 1.0)
    outside_bone = 1.0 - soft(d_bone, px)
    crop += (f32(head.scalp_hu) + f32(4.0) * st.texture - crop) * outside_bone  # scalp
    crop += (f32(-1000.0) - crop) * (1.0 - soft(d_out, px))  # air
    _orbits(st, crop, tables, outside_bone)
    crop += (st.brain_hu - crop) * in_frac
    return crop


def _orbits(st: SliceState, crop: np.ndarray, tables: Tables, outside_bone: np.ndarray) -> None:
    """Two globes (vitreous ~10 HU in orbital fat ~-90 HU) in front of the skull, low slices (the
    skull itself is left whole: the orbits never open the intracranial space)."""
    ob = bump(st.z, *ORBIT_Z)
    if ob <= 0:
        return
    fr, px = st.frame, st.frame.px
    r_globe = 11.5 * ob
    for side in (-1, 1):
        th = -math.pi / 2 + side * 0.42
        r_in = float(np.interp(wrap(np.float32(th + st.head.angle)), BIN_T, tables.r_in, period=2 * np.pi))
        cx, cy = (r_in + r_globe + 4.0) * math.cos(th), (r_in + r_globe + 4.0) * math.sin(th)
        win = fr.roi(cx, cy, r_globe + 6.0)
        if win is None:
            continue
        xp, yp = fr.head_xy(win)
        keep = outside_bone[win]
        fat = ellipse_frac(xp, yp, cx, cy, r_globe + 5.0, r_globe + 4.0, px) * keep
        globe = ellipse_frac(xp, yp, cx, cy, r_globe, r_globe, px) * keep
        sub = crop[win]
        sub += (f32(-90.0) - sub) * fat
        sub += (f32(12.0) - sub) * globe
