"""A synthetic non-contrast head CT with intracranial hemorrhage, rendered slice by slice in HU.

The anatomy is described in millimetres and in a relative position along the head,
``z`` in [0, 1] (0: skull base, 1: vertex; 1 unit = ``HEAD_HEIGHT_MM``), so the same head renders
at 128² for training and at 512² for the data set on disk. A slice is built in layers:

- air (-1000 HU), scalp (soft tissue), skull (cortical tables ~1500-1900 HU around a diploe of
  ~800-1000 HU; thickness varies around the head and grows towards the skull base);
- brain: white matter ~24-30 HU, grey matter 8-12 HU brighter (a cortical ribbon that follows the
  sulci, basal ganglia/thalami near the ventricles), cerebrospinal fluid 2-12 HU in the sulci
  (zero crossings of a smooth random field: a curved network like gyri), a thin layer under the
  skull, the interhemispheric fissure with the falx, and the ventricles (lateral, third, fourth
  at their levels); fine texture and pixel noise;
- below z ~ 0.32 a simplified skull base (petrous ridges, clivus/sphenoid with its sinus), and a
  frontal sinus in a thickened frontal bone around z 0.2-0.42;
- hemorrhage, 50-85 HU, one to a few lesions per head, each a 3-D object spanning several slices:
  epidural (biconvex lens against the inner table), subdural (long thin crescent along it),
  intraparenchymal (irregular blob with a darker oedema rim), intraventricular (blood layering in
  the dependent, posterior part of the lateral ventricles) and subarachnoid (blood filling the
  sulci and the cortical CSF of a region).

Boundaries are anti-aliased (partial-volume fractions from signed distances in mm), so a coarse
grid sees what a CT scanner with big pixels would see. The hemorrhage mask is "blood fraction
>= 0.5"; a subtype label is 1 iff that lesion's own mask is non-empty on this slice.

Conventions of the rendered slice: radiological display, anterior at the top (row 0), the
patient's right on the left of the image (column 0), pixels square, ``pixel_mm`` defaults to
``FOV_MM / size``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ._fields import ANGLE_BIN_CENTRES, polar_grid, smooth_field_window
from .constants import LABELS, SUBTYPES

FOV_MM = 230.0  # in-plane field of view: 0.449 mm pixels at 512², 1.80 mm at 128²
HEAD_HEIGHT_MM = 160.0  # z = 0..1 spans this many mm (32 slices of 5 mm)
REFERENCE_PIXEL_MM = FOV_MM / 512  # pixel noise is specified at this pixel size


# --------------------------------------------------------------------------------------------
# parameters


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
    noise_hu: float  # pixel noise standard deviation at REFERENCE_PIXEL_MM


@dataclass(frozen=True)
class Lesion:
    """One hemorrhage: a 3-D object (its cross-section shrinks to zero at ``zc +- hz``)."""

    subtype: str
    zc: float
    hz: float
    blood_hu: float
    params: dict = field(default_factory=dict)


@dataclass
class PhantomSlice:
    """One rendered axial slice."""

    hu: np.ndarray  # float32 (H, W), Hounsfield units
    mask: np.ndarray  # uint8 (H, W), 1 = hemorrhage
    brain: np.ndarray  # uint8 (H, W), 1 = intracranial space (brain, CSF, hemorrhage)
    labels: np.ndarray  # float32 (6,), in LABELS order ("any" last)
    spacing: tuple[float, float]  # (row_mm, col_mm)


def sample_head(rng: np.random.Generator) -> Head:
    """Draw one subject's anatomy."""
    a = rng.uniform(70.0, 79.0)
    return Head(
        a_mm=a,
        b_mm=a * rng.uniform(1.15, 1.30),
        angle=rng.uniform(-0.12, 0.12),
        offset_mm=(rng.uniform(-6, 6), rng.uniform(-8, 6)),
        shape_harmonics=rng.normal(0.0, 1.0, (4, 2)) * (0.018 / np.arange(1, 5))[:, None],
        skull_mm=rng.uniform(5.0, 7.5),
        skull_harmonics=rng.normal(0.0, 0.05, (5, 2)),
        scalp_mm=rng.uniform(3.5, 6.0),
        atrophy=rng.uniform(0.75, 1.5),
        ventricle=(
            rng.uniform(6.0, 9.0),
            rng.uniform(-4.0, 4.0),
            rng.uniform(3.0, 5.5),
            rng.uniform(19.0, 27.0),
            rng.uniform(0.10, 0.25),
        ),
        white_hu=rng.uniform(24.0, 30.0),
        grey_delta_hu=rng.uniform(8.0, 12.0),
        csf_hu=rng.uniform(2.0, 12.0),
        scalp_hu=rng.uniform(15.0, 40.0),
        noise_hu=rng.uniform(5.0, 8.0),
    )


# z ranges (relative) where structures exist
_BRAIN_Z = (0.0, 0.97)
_LATERAL_VENTRICLE_Z = (0.44, 0.74)
_THIRD_VENTRICLE_Z = (0.36, 0.50)
_FOURTH_VENTRICLE_Z = (0.12, 0.30)
_FISSURE_Z = 0.34  # the interhemispheric fissure exists above this level
_SKULL_BASE_Z = 0.32  # petrous ridges and the clivus/sphenoid below this level
_FRONTAL_SINUS_Z = (0.20, 0.42)


def head_scale(z: float) -> float:
    """Relative size of the head's cross-section at level z (1 at the widest level)."""
    return math.sqrt(max(0.04, 1.0 - ((z - 0.42) / 0.68) ** 2))


def _bump(z: float, lo: float, hi: float) -> float:
    """0 outside [lo, hi], 1 in the middle, elliptic profile."""
    c, h = (lo + hi) / 2, (hi - lo) / 2
    return math.sqrt(max(0.0, 1.0 - ((z - c) / h) ** 2))


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
    if subtype == "epidural":
        # lateral (temporo-parietal) most often, sometimes frontal or occipital
        p["theta"] = rng.choice([0.0, math.pi]) + rng.normal(0.0, 0.55)
        p["half_arc_mm"] = rng.uniform(14.0, 28.0) * s
        p["thick_mm"] = rng.uniform(5.0, 13.0) * s
        hz_mm = rng.uniform(10.0, 22.0) * s
        z_range = (0.25, 0.85)
        blood = rng.uniform(55.0, 82.0)
    elif subtype == "subdural":
        p["theta"] = rng.choice([0.0, math.pi]) + rng.normal(0.0, 0.35)
        p["half_arc_mm"] = rng.uniform(40.0, 75.0) * s
        p["thick_mm"] = rng.uniform(3.0, 9.0) * s
        hz_mm = rng.uniform(20.0, 40.0) * s
        z_range = (0.3, 0.85)
        blood = rng.uniform(52.0, 78.0)
    elif subtype == "intraparenchymal":
        p["theta"] = rng.uniform(-math.pi, math.pi)
        p["depth_frac"] = rng.uniform(0.2, 0.65)  # centre at this fraction of the inner radius
        p["radius_mm"] = rng.uniform(3.5, 12.0) * s
        p["harmonics"] = rng.normal(0.0, 0.09, (4, 2))
        p["oedema_mm"] = rng.uniform(1.5, 5.0) * math.sqrt(s)
        p["oedema_hu"] = rng.uniform(7.0, 12.0)
        hz_mm = p["radius_mm"] * rng.uniform(0.8, 1.3)
        z_range = (0.3, 0.85)
        blood = rng.uniform(55.0, 85.0)
    elif subtype == "intraventricular":
        p["sides"] = [(-1,), (1,), (-1, 1)][int(rng.integers(3))]
        p["fill"] = min(1.0, rng.uniform(0.2, 0.55) * s)  # fraction of the AP length, from the back
        hz_mm = rng.uniform(10.0, 25.0) * s
        z_range = (0.5, 0.68)
        blood = rng.uniform(50.0, 72.0)
    else:  # subarachnoid
        p["theta"] = rng.uniform(-math.pi, math.pi)
        p["depth_mm"] = rng.choice([0.0, 12.0])  # convexity, or deeper (sylvian-like)
        p["radius_mm"] = rng.uniform(14.0, 28.0) * s
        p["widen"] = 1.4 + 0.35 * max(0.0, s - 1.0)  # blood distends the sulci
        hz_mm = rng.uniform(8.0, 18.0) * s
        z_range = (0.35, 0.9)
        blood = rng.uniform(55.0, 78.0)
    hz = hz_mm / HEAD_HEIGHT_MM
    if zc is None:
        zc = rng.uniform(*z_range)
    return Lesion(subtype=subtype, zc=float(zc), hz=float(hz), blood_hu=float(blood), params=p)


# --------------------------------------------------------------------------------------------
# rendering


def _soft(d: np.ndarray, px: float) -> np.ndarray:
    """Partial-volume fraction of a pixel whose centre is at signed distance d (mm) inside."""
    return np.clip(d * (1.0 / px) + 0.5, 0.0, 1.0)


def _harmonic(theta: np.ndarray, coef: np.ndarray, first_k: int) -> np.ndarray:
    out = np.zeros_like(theta)
    for i, (c, s) in enumerate(coef):
        k = first_k + i
        out += c * np.cos(k * theta) + s * np.sin(k * theta)
    return out


_KMAX = 8
_BIN_T = ANGLE_BIN_CENTRES.astype(np.float64)
_COS_KT = np.cos(np.arange(_KMAX + 1)[:, None] * _BIN_T[None, :])  # (k, bins)
_SIN_KT = np.sin(np.arange(_KMAX + 1)[:, None] * _BIN_T[None, :])


def _table_harmonic(coef: np.ndarray, first_k: int, angle: float) -> np.ndarray:
    """``_harmonic(bin_angles - angle, coef, first_k)`` on the angle bins, from a cached basis:
    cos(k(t - a)) = cos kt cos ka + sin kt sin ka (rotating the coefficients, not the bins)."""
    ks = np.arange(first_k, first_k + len(coef))
    c, s = coef[:, 0], coef[:, 1]
    ca, sa = np.cos(ks * angle), np.sin(ks * angle)
    return (c * ca - s * sa) @ _COS_KT[ks] + (c * sa + s * ca) @ _SIN_KT[ks]


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.float32(np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)


class _Frame:
    """Where the head sits on the pixel grid: crop window, head-frame coordinates, ROIs.

    The head centre sits on a whole-pixel offset, so radius and angle come from a cached grid;
    the in-plane rotation is applied to the angle tables and, for the small regions that need
    Cartesian head-frame coordinates (ventricles, lesions, fissure), to those coordinates.
    """

    def __init__(self, size: int, px: float, head: Head, r_out_t: np.ndarray):
        self.size, self.px = size, px
        lim = size // 4
        self.nx = int(np.clip(round(head.offset_mm[0] / px), -lim, lim))
        self.ny = int(np.clip(round(head.offset_mm[1] / px), -lim, lim))
        self.ca, self.sa = math.cos(head.angle), math.sin(head.angle)
        t = ANGLE_BIN_CENTRES.astype(np.float64)
        jc, ic = (size - 1) / 2 + self.nx, (size - 1) / 2 + self.ny
        ex, ey = r_out_t * np.cos(t) / px, r_out_t * np.sin(t) / px
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


def render(
    head: Head,
    lesions: Sequence[Lesion],
    z: float,
    rng: np.random.Generator,
    size: int = 512,
    pixel_mm: float | None = None,
) -> PhantomSlice:
    """Render one axial slice of ``head`` at level ``z`` with the given lesions.

    ``rng`` only drives the slice-level randomness (sulcal pattern, texture, noise); the anatomy
    and the lesions are fixed by ``head`` and ``lesions``, so consecutive slices of one subject
    are consistent in 3-D.
    """
    px = float(pixel_mm) if pixel_mm is not None else FOV_MM / size
    f32 = np.float32
    at = head.atrophy

    # per-angle radii (mm) of the skin, outer and inner table at this level; bins are image
    # angles, the anatomy is evaluated at the head-frame angle (rotation = shift of the tables)
    t = ANGLE_BIN_CENTRES.astype(np.float64)
    th = t - head.angle
    hs = head_scale(z)
    a, b = head.a_mm * hs, head.b_mm * hs
    r_ell = a * b / np.sqrt((b * np.cos(th)) ** 2 + (a * np.sin(th)) ** 2)
    r_out_t = r_ell * (1.0 + _table_harmonic(head.shape_harmonics, 2, head.angle))
    base = 1.0 + 0.4 * max(0.0, 0.3 - z) / 0.3  # thicker towards the skull base
    cos2 = _table_harmonic(np.array([[1.0, 0.0]]), 2, head.angle)  # cos(2 th)
    skull_t = head.skull_mm * base * (1.0 - 0.15 * cos2) * (1.0 + _table_harmonic(head.skull_harmonics, 1, head.angle))
    fs = _bump(z, *_FRONTAL_SINUS_Z)
    if fs > 0:  # the frontal bone thickens around the frontal sinus
        sinus_w = fs * np.exp(-((_wrap(th + np.pi / 2) / 0.3) ** 4))
        skull_t = skull_t + 9.0 * sinus_w
    skull_t = np.maximum(skull_t, 3.0)
    r_in_t = r_out_t - head.scalp_mm - skull_t
    a_in = float(np.max(np.abs(r_in_t * np.cos(th))))  # inner semi-axes (mm)
    b_in = float(np.max(np.abs(r_in_t * np.sin(th))))
    # per-slice angular variation of sulcal depth and cortical thickness
    sdepth_t = (12.0 + 8.0 * z) * (1.0 + _table_harmonic(rng.normal(0, 0.12, (4, 2)), 1, head.angle))
    ctx_t = 4.0 * (1.0 + _table_harmonic(rng.normal(0, 0.12, (4, 2)), 1, head.angle))

    fr = _Frame(size, px, head, r_out_t)
    ib, r = fr.ib, fr.r
    d_out = r_out_t.astype(f32)[ib] - r  # depth below the skin (mm)
    d_bone = d_out - f32(head.scalp_mm)  # depth below the outer table
    din = r_in_t.astype(f32)[ib] - r  # depth below the inner table (> 0: intracranial)

    # ---- brain tissue -----------------------------------------------------------------------
    texture = smooth_field_window(rng, size, px, 2.5, fr.rows, fr.cols)
    sulc = smooth_field_window(rng, size, px, 4.0, fr.rows, fr.cols)
    sulc_abs = np.abs(sulc)
    w = f32(0.16 * at)
    depth_taper = np.clip((sdepth_t.astype(f32)[ib] - din) * f32(1 / 3.0), 0.0, 1.0)
    csf = np.clip((w - sulc_abs) * (1.0 / (0.5 * w)), 0.0, 1.0) * depth_taper
    csf_surface = np.clip((f32(0.9 * at) - din) * f32(1 / 0.8), 0.0, 1.0)
    grey = np.clip((ctx_t.astype(f32)[ib] - din) * f32(1 / 1.5), 0.0, 1.0)
    np.maximum(grey, np.clip((f32(3.5) * w - sulc_abs) * (1.0 / w), 0.0, 1.0) * depth_taper, out=grey)

    vent_frac: dict[int, np.ndarray] = {}
    vent_v: dict[int, np.ndarray] = {}
    vx, vy, vlr, vap, vdiv = head.ventricle
    lv = _bump(z, *_LATERAL_VENTRICLE_Z)
    vwin = fr.roi(0.0, vy, vap + 30.0)
    if lv > 0 and vwin is not None:
        xp, yp = fr.head_xy(vwin)
        c_sub, g_sub = csf[vwin], grey[vwin]
        ap = vap * at**0.3 * (0.35 + 0.65 * lv)
        for side in (-1, 1):
            # a banana per side: narrow frontal horn near the septum, wider trigone behind,
            # the two diverging posteriorly
            ang = side * vdiv
            cu, su = f32(math.cos(ang)), f32(math.sin(ang))
            dx, dy = xp - f32(side * vx * at**0.5), yp - f32(vy)
            u = cu * dx - su * dy
            v = (su * dx + cu * dy) * f32(1.0 / ap)
            lr = f32(vlr * at * (0.3 + 0.7 * lv)) * np.clip(f32(0.85) + f32(0.4) * v, 0.55, 1.2)
            e = np.sqrt((u / lr) ** 2 + v * v)
            frac = _soft((1.0 - e) * lr, px) * _soft(f32(side) * xp - f32(1.0), px)  # septum
            vent_frac[side], vent_v[side] = frac, v
            np.maximum(c_sub, frac, out=c_sub)
        for side in (-1, 1):  # caudate/lentiform/thalamus: faint grey lateral to the ventricles
            dx = xp - f32(side * (vx * at**0.5 + vlr * at + 10.0))
            e = np.sqrt((dx * f32(1 / 7.0)) ** 2 + ((yp - f32(vy + 2.0)) * f32(1 / 15.0)) ** 2)
            np.maximum(g_sub, _soft((1.0 - e) * 7.0, 3.0) * f32(0.6 * min(1.0, 2 * lv)), out=g_sub)
    tv = _bump(z, *_THIRD_VENTRICLE_Z)
    win = fr.roi(0.0, vy + 4.0, 20.0)
    if tv > 0 and win is not None:
        xp, yp = fr.head_xy(win)
        e = np.sqrt((xp * f32(1 / (1.6 * at))) ** 2 + ((yp - f32(vy + 4.0)) * f32(1 / (11.0 * tv))) ** 2)
        np.maximum(csf[win], _soft((1.0 - e) * f32(1.6 * at), px), out=csf[win])
    fv = _bump(z, *_FOURTH_VENTRICLE_Z)
    win = fr.roi(0.0, 0.35 * b_in, 15.0)
    if fv > 0 and win is not None:
        xp, yp = fr.head_xy(win)
        e = np.sqrt((xp * f32(1 / (6.0 * fv * at))) ** 2 + ((yp - f32(0.35 * b_in)) * f32(1 / (4.0 * fv))) ** 2)
        np.maximum(csf[win], _soft((1.0 - e) * f32(4.0 * fv), px), out=csf[win])
    np.maximum(csf, csf_surface, out=csf)

    brain_hu = f32(head.white_hu) + f32(head.grey_delta_hu) * grey
    brain_hu += f32(2.0) * texture
    fwin = fr.roi(0.0, 0.0, 4.0 + abs(fr.sa) * b, b + 4.0) if z > _FISSURE_Z else None
    if fwin is not None:  # interhemispheric fissure (CSF) with the falx (a thin dense membrane)
        xp, yp = fr.head_xy(fwin)
        cut = 0.0 if z > 0.72 else 0.4 * b_in
        along = np.clip((np.abs(yp) - f32(cut)) * f32(1 / 3.0), 0.0, 1.0)
        fissure = _soft(f32(1.1 * at) - np.abs(xp), px) * along
        np.maximum(csf[fwin], fissure, out=csf[fwin])
    brain_hu += (f32(head.csf_hu) - brain_hu) * csf
    if fwin is not None:
        brain_hu[fwin] += f32(25.0) * _soft(f32(0.35) - np.abs(xp), px) * along

    # ---- hemorrhage -------------------------------------------------------------------------
    h, wd = fr.shape
    mask = np.zeros((h, wd), dtype=bool)
    labels = np.zeros(len(LABELS), dtype=np.float32)
    for les in lesions:
        prof = _bump(z, les.zc - les.hz, les.zc + les.hz)
        if prof <= 0:
            continue
        p = les.params
        if les.subtype in ("epidural", "subdural"):
            th0 = float(p["theta"])
            r0 = float(np.interp(_wrap(np.float32(th0 + head.angle)), t, r_in_t, period=2 * np.pi))
            thick_max = min(p["thick_mm"] * prof, 0.4 * min(a_in, b_in))
            half = p["half_arc_mm"] + thick_max + 2.0
            win = fr.roi(r0 * math.cos(th0), r0 * math.sin(th0), half)
            if win is None:
                continue
            theta_h = ANGLE_BIN_CENTRES[fr.ib[win]] - f32(head.angle)
            arc = np.abs(_wrap(theta_h - f32(th0))) * (r_in_t.astype(f32)[fr.ib[win]] * f32(1.0 / p["half_arc_mm"]))
            # lens: elliptic thickness profile; crescent: flat, tapering only near its ends
            if les.subtype == "epidural":
                prof_t = np.sqrt(np.clip(1.0 - arc * arc, 0.0, None))
            else:
                prof_t = np.clip(1.0 - arc**3, 0.0, None)
            thick = f32(thick_max) * prof_t
            d = din[win]
            frac = np.minimum(_soft(thick - d, px), _soft(d, px)) * (thick > 0)
        elif les.subtype == "intraparenchymal":
            th0 = float(p["theta"])
            rc = float(np.interp(_wrap(np.float32(th0 + head.angle)), t, r_in_t, period=2 * np.pi)) * p["depth_frac"]
            cx, cy = rc * math.cos(th0), rc * math.sin(th0)
            rad0 = p["radius_mm"] * prof
            win = fr.roi(cx, cy, rad0 * 1.5 + p["oedema_mm"] + 2.0)
            if win is None:
                continue
            xp, yp = fr.head_xy(win)
            dx, dy = xp - f32(cx), yp - f32(cy)
            rr = np.sqrt(dx * dx + dy * dy)
            psi = np.arctan2(dy, dx)
            rad = f32(rad0) * (f32(1.0) + _harmonic(psi, p["harmonics"], 2) + f32(0.06) * texture[win])
            d = din[win]
            rim = _soft(rad + f32(p["oedema_mm"]) - rr, max(px, 2.0)) * (d > 0)
            brain_hu[win] -= f32(p["oedema_hu"]) * rim
            frac = _soft(rad - rr, px) * _soft(d - f32(2.0), px)
        elif les.subtype == "intraventricular":
            if not vent_frac:
                continue
            win = vwin
            frac = np.zeros(vent_frac[-1].shape, dtype=f32)
            level = f32(1.0 - 2.0 * p["fill"])  # v runs from -1 (front) to 1 (back)
            for side in p["sides"]:
                # blood layers in the dependent (posterior) part, a sharp fluid level
                np.maximum(frac, vent_frac[side] * _soft((vent_v[side] - level) * f32(10.0), 1.0), out=frac)
        else:  # subarachnoid
            th0 = float(p["theta"])
            rc = float(np.interp(_wrap(np.float32(th0 + head.angle)), t, r_in_t, period=2 * np.pi)) - p["depth_mm"]
            cx, cy = rc * math.cos(th0), rc * math.sin(th0)
            rad0 = p["radius_mm"] * prof
            win = fr.roi(cx, cy, rad0 + 3.0)
            if win is None:
                continue
            xp, yp = fr.head_xy(win)
            dist = np.sqrt((xp - f32(cx)) ** 2 + (yp - f32(cy)) ** 2)
            region = np.clip((f32(rad0) - dist) * f32(1 / 3.0), 0.0, 1.0)
            wide = w * f32(p["widen"])
            sulcal = np.clip((wide - sulc_abs[win]) * (1.0 / (0.5 * wide)), 0.0, 1.0) * depth_taper[win]
            frac = region * np.maximum(sulcal, csf_surface[win]) * _soft(din[win], px)
        sub = brain_hu[win]
        sub += (f32(les.blood_hu) + f32(3.0) * texture[win] - sub) * frac
        m = frac >= 0.5
        if m.any():
            mask[win] |= m
            labels[SUBTYPES.index(les.subtype)] = 1.0
    labels[-1] = labels[:-1].max()

    # ---- skull base: petrous ridges (a V opening backwards), clivus/sphenoid, sphenoid sinus --
    base_bone = None
    sb = min(1.0, max(0.0, (_SKULL_BASE_Z - z) / 0.15))
    bwin = fr.roi(0.0, 0.0, a_in + 2.0, b_in + 2.0) if sb > 0 else None
    if bwin is not None:
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
            np.maximum(bone_f, _soft((1.0 - e) * f32(width), px), out=bone_f)
        ex, ey = 7.0 + 6.0 * sb, 9.0 + 6.0 * sb
        e = np.sqrt((xp * f32(1 / ex)) ** 2 + ((yp - f32(cy)) * f32(1 / ey)) ** 2)
        np.maximum(bone_f, _soft((1.0 - e) * f32(ex), px), out=bone_f)
        sub = brain_hu[bwin]
        sub += (f32(1450.0) + f32(60.0) * texture[bwin] - sub) * bone_f
        if z < _SKULL_BASE_Z - 0.06:  # the sphenoid sinus: air inside the sphenoid body
            sx, sy = 0.55 * ex, 0.55 * ey
            e = np.sqrt((xp * f32(1 / sx)) ** 2 + ((yp - f32(cy - 1.0)) * f32(1 / sy)) ** 2)
            air = _soft((1.0 - e) * f32(sx), px)
            sub += (f32(-1000.0) - sub) * air
        base_bone = (bwin, bone_f >= 0.5)

    # ---- skull, scalp, air, noise -----------------------------------------------------------
    u = np.clip(d_bone / skull_t.astype(f32)[ib], 0.0, 1.0)
    diploe = np.clip(1.0 - np.abs(u - f32(0.5)) * f32(1 / 0.28), 0.0, 1.0)
    crop = f32(1750.0) - f32(850.0) * diploe + f32(60.0) * texture  # bone
    if fs > 0:  # air cells of the frontal sinus inside the thickened frontal bone
        # a lens in (angle, depth): widest in the middle of the bone, lobulated by the texture
        ang2 = ((_wrap(th + np.pi / 2) / (0.22 * fs + 1e-6)) ** 2).astype(f32)[ib]
        lens = f32(1.0) - ang2 - ((u - f32(0.5)) * f32(1 / 0.32)) ** 2 + f32(0.25) * texture
        crop += (f32(-1000.0) - crop) * np.clip(lens * f32(4.0), 0.0, 1.0)
    bone_frac = _soft(d_bone, px)
    crop += (f32(head.scalp_hu) + f32(4.0) * texture - crop) * (1.0 - bone_frac)  # scalp
    crop += (f32(-1000.0) - crop) * (1.0 - _soft(d_out, px))  # air
    in_frac = _soft(din, px)
    crop += (brain_hu - crop) * in_frac
    hu = np.full((size, size), -1000.0, dtype=f32)
    hu[fr.rows, fr.cols] = crop
    sigma = head.noise_hu * math.sqrt(REFERENCE_PIXEL_MM / px)
    hu += f32(sigma) * rng.standard_normal((size, size), dtype=f32)
    np.clip(hu, -1024.0, 3071.0, out=hu)

    brain_c = in_frac >= 0.5
    if base_bone is not None:
        brain_c[base_bone[0]] &= ~base_bone[1]
    mask &= brain_c
    brain = np.zeros((size, size), dtype=np.uint8)
    brain[fr.rows, fr.cols] = brain_c
    full_mask = np.zeros((size, size), dtype=np.uint8)
    full_mask[fr.rows, fr.cols] = mask
    return PhantomSlice(hu=hu, mask=full_mask, brain=brain, labels=labels, spacing=(px, px))


def render_slice(
    rng: np.random.Generator,
    size: int = 512,
    z: float = 0.5,
    subtypes: Sequence[str] = (),
    lesion_scale: float = 1.0,
    pixel_mm: float | None = None,
) -> PhantomSlice:
    """Render one slice of a freshly drawn head at level ``z`` with the given hemorrhage subtypes.

    Each requested lesion is placed so that this slice passes near its middle, but a lesion can
    still miss the slice (e.g. intraventricular blood where there are no lateral ventricles, or a
    subarachnoid bleed whose sulci are thinner than a pixel); its label is then 0, so the labels
    always agree with ``mask``. ``lesion_scale`` multiplies the linear size of every lesion
    (1.0 is realistic; larger values make an easier curriculum).
    """
    if not 0.0 <= z <= 1.0:
        raise ValueError(f"z must be in [0, 1], got {z}")
    head = sample_head(rng)
    lesions = []
    for st in subtypes:
        les = sample_lesion(rng, st, head, zc=0.0, lesion_scale=lesion_scale)
        zc = z + rng.uniform(-0.35, 0.35) * les.hz
        lesions.append(Lesion(les.subtype, zc, les.hz, les.blood_hu, les.params))
    return render(head, lesions, z, rng, size=size, pixel_mm=pixel_mm)


def __getattr__(name: str):
    # ``write_phantom`` lives in phantom_writer (nibabel, files), which imports this module:
    # re-exported lazily (PEP 562) so either module can be imported first.
    if name == "write_phantom":
        from .phantom_writer import write_phantom

        return write_phantom
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
