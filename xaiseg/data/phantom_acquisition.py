"""How the phantom head is "scanned": the acquisition and distribution knobs of domain randomisation.

An :class:`Acquisition` is one scanner/protocol/export setting (drawn once per subject by the
writer, once per slice by the training stream); :func:`sample_acquisition` draws it from ranges
wider than real scanners (SynthSeg's lesson: randomise beyond the real range and the real
images fall inside it). In the order they act on a slice:

- ``fov_mm``: field of view, hence pixel size and how much of the frame the head fills;
- ``slice_mm``: slice thickness; the skull is averaged over the slab (partial-volume skull at
  the skull base and vertex: a smeared band of 60-300 HU inside the inner table);
- ``cupping_hu``: beam hardening under the inner table (a bright or dark rim of the brain);
- ``streak_rate``: streaks from dense bone (many at the skull base: the petrous "Hounsfield bar");
- ``holder``: the head rest, a bright arc behind the head;
- ``blur_mm``: the scanner's point-spread function (Gaussian);
- ``resolution``: a coarser reconstruction grid (down- then up-sampled by this factor);
- ``noise_hu``, ``grain_mm``: quantum noise level and its correlation length (CT noise texture);
- ``hu_scale``, ``hu_offset``: calibration drift (``hu * scale + offset``);
- ``window8``: the slice exported as an 8-bit windowed image (centre, width) and read back as
  HU, as many public sets are distributed: everything outside the window saturates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .phantom_geometry import FOV_MM, REFERENCE_PIXEL_MM, f32, head_scale


@dataclass(frozen=True)
class Acquisition:
    """One scan's acquisition and export settings (see the module docstring)."""

    fov_mm: float = FOV_MM
    slice_mm: float = 0.0
    cupping_hu: float = 0.0
    streak_rate: float = 0.0
    holder: bool = False
    blur_mm: float = 0.0
    resolution: float = 1.0
    noise_hu: float | None = None  # None: the head's own noise level
    grain_mm: float = 0.0
    hu_scale: float = 1.0
    hu_offset: float = 0.0
    window8: tuple[float, float] | None = None


CLEAN = Acquisition()  # the deterministic look: white pixel noise only, no artefacts

# The writer's share of 8-bit exports (at full strength): about a third of public sets' heads.
WINDOW8_SHARE = 0.35


def sample_acquisition(
    rng: np.random.Generator, strength: float = 1.0, window8_share: float = WINDOW8_SHARE
) -> Acquisition:
    """Draw one acquisition. ``strength`` in [0, 1] scales the chance and size of artefacts
    (the training curriculum starts mild); 1 is the full randomisation. ``window8_share`` is
    the chance of an 8-bit export at full strength (scaled by ``strength`` like the others)."""
    s = float(np.clip(strength, 0.0, 1.0))

    def maybe(p: float) -> bool:
        return bool(rng.random() < p * s)

    window8 = None
    if maybe(window8_share):  # brain window mostly, sometimes a subdural-like wider one
        window8 = (float(rng.uniform(30.0, 50.0)), float(rng.choice([rng.uniform(80.0, 140.0), rng.uniform(140.0, 220.0)])))
    return Acquisition(
        fov_mm=float(rng.uniform(200.0, 290.0)) if maybe(0.8) else FOV_MM,
        slice_mm=float(rng.uniform(1.0, 7.0)) if maybe(0.8) else 0.0,
        cupping_hu=float(rng.uniform(-3.0, 8.0)) * s,
        streak_rate=float(rng.uniform(0.0, 2.0)) if maybe(0.4) else 0.0,
        holder=maybe(0.5),
        blur_mm=float(rng.uniform(0.2, 1.2)) * s,
        resolution=float(rng.uniform(1.0, 2.0)) if maybe(0.3) else 1.0,
        noise_hu=float(rng.uniform(3.0, 5.0 + 6.0 * s)),
        grain_mm=float(rng.uniform(0.0, 1.2)) * s,
        hu_scale=float(rng.uniform(1.0 - 0.06 * s, 1.0 + 0.06 * s)),
        hu_offset=float(rng.uniform(-6.0, 6.0)) * s,
        window8=window8,
    )


def cupping(brain_hu: np.ndarray, din: np.ndarray, acq: Acquisition) -> None:
    """Beam hardening: brain under the inner table shifted by ``cupping_hu``, fading over ~4 mm."""
    if acq.cupping_hu:
        brain_hu += f32(acq.cupping_hu) * np.exp(-np.clip(din, 0.0, None) * f32(1 / 4.0))


def _head_centre(frame) -> tuple[float, float]:
    return (frame.size - 1) / 2 + frame.nx, (frame.size - 1) / 2 + frame.ny


def streaks_and_holder(hu: np.ndarray, frame, z: float, b_mm: float, acq: Acquisition, rng: np.random.Generator) -> None:
    """Streaks through the head (more at the skull base) and the head rest behind it, in place."""
    size, px = hu.shape[0], frame.px
    jc, ic = _head_centre(frame)
    jj = (np.arange(size, dtype=np.float32) - np.float32(jc))[None, :] * f32(px)
    ii = (np.arange(size, dtype=np.float32) - np.float32(ic))[:, None] * f32(px)
    n = int(rng.poisson(acq.streak_rate * (1.0 + 3.0 * max(0.0, 0.35 - z) / 0.35))) if acq.streak_rate else 0
    if n:
        inside = hu > -300.0
        for _ in range(n):
            a = float(rng.uniform(0.0, math.pi))
            d0 = float(rng.normal(0.0, 12.0))
            width = float(rng.uniform(0.4, 1.5))
            amp = float(rng.uniform(5.0, 30.0)) * float(rng.choice([-1.0, 1.0]))
            d = jj * f32(math.sin(a)) - ii * f32(math.cos(a)) - f32(d0)
            hu += (f32(amp) * np.exp(-(d / f32(width)) ** 2)) * inside
    if acq.holder:
        r = b_mm * head_scale(z) + float(rng.uniform(3.0, 25.0))
        rr = np.sqrt(jj * jj + ii * ii)
        below = ii > f32(0.35 * r)  # the rest cradles the back of the head (bottom of the image)
        arc = np.clip(1.0 - np.abs(rr - f32(r)) * f32(1 / 1.2), 0.0, 1.0) * below
        hu += (f32(rng.uniform(150.0, 500.0)) - hu) * arc


def _resample(hu: np.ndarray, factor: float) -> np.ndarray:
    from scipy import ndimage as ndi

    size = hu.shape[0]
    small_n = max(8, int(round(size / factor)))
    pre = ndi.gaussian_filter(hu, 0.4 * factor, mode="nearest")  # no aliasing on the way down
    small = ndi.zoom(pre, small_n / size, order=1, grid_mode=True, mode="nearest")
    return ndi.zoom(small, size / small.shape[0], order=1, grid_mode=True, mode="nearest").astype(np.float32)


def _noise(shape: tuple[int, int], sigma: float, grain_px: float, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(shape, dtype=np.float32)
    if grain_px < 0.3:
        return f32(sigma) * white
    from scipy import ndimage as ndi

    g = ndi.gaussian_filter(white, grain_px, mode="wrap")
    return g * f32(sigma / max(1e-6, float(g.std())))  # correlated, same standard deviation


def to_8bit_and_back(hu: np.ndarray, centre: float, width: float) -> np.ndarray:
    """An 8-bit windowed export read back as HU: ``round(255 (hu - lo) / width) width / 255 + lo``."""
    lo = centre - width / 2
    grey = np.rint(np.clip((hu - f32(lo)) * f32(255.0 / width), 0.0, 255.0))
    return (grey * f32(width / 255.0) + f32(lo)).astype(np.float32)


def finish(hu: np.ndarray, px: float, noise_hu: float, acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """Blur, resolution change, noise, calibration, clipping and the 8-bit export of a slice."""
    if acq.blur_mm / px > 0.15:
        from scipy import ndimage as ndi

        hu = ndi.gaussian_filter(hu, acq.blur_mm / px, mode="nearest")
    px_eff = px
    if acq.resolution > 1.05:
        hu = _resample(hu, acq.resolution)
        px_eff = px * acq.resolution
    sigma = (acq.noise_hu if acq.noise_hu is not None else noise_hu) * math.sqrt(REFERENCE_PIXEL_MM / px_eff)
    hu = hu + _noise(hu.shape, sigma, acq.grain_mm / px, rng)
    if acq.hu_scale != 1.0 or acq.hu_offset:
        hu = hu * f32(acq.hu_scale) + f32(acq.hu_offset)
    np.clip(hu, -1024.0, 3071.0, out=hu)
    if acq.window8 is not None:
        hu = to_8bit_and_back(hu, *acq.window8)
    return hu
