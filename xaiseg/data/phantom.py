"""A synthetic non-contrast head CT with intracranial hemorrhage, rendered slice by slice in HU.

The anatomy is described in millimetres and in a relative position along the head,
``z`` in [0, 1] (0: skull base, 1: vertex; 1 unit = ``HEAD_HEIGHT_MM``), so the same head renders
at 128² for training and at 512² for the data set on disk. :func:`render` builds a slice in
layers, each in its own module:

- anatomy (:mod:`.phantom_anatomy`): air, scalp, skull (cortical tables ~1500-1900 HU around a
  diploe of ~800-1000 HU, thickness varying around the head and towards the skull base), brain
  (white matter, a grey cortical ribbon following sulci drawn as zero crossings of a smooth
  random field, deep grey nuclei, CSF in sulci, fissure, ventricles), falx and tentorium, skull
  base with sphenoid sinus and mastoid air, orbits, frontal sinus;
- hemorrhage (:mod:`.phantom_lesions`): the five subtypes as 3-D objects spanning several slices,
  acute or subacute, with oedema rims and mass effect (midline shift);
- mimics (:mod:`.phantom_mimics`): calcifications, a dense venous sinus, bone edges: bright but
  not blood, on positive and negative slices alike;
- acquisition (:mod:`.phantom_acquisition`): field of view, slice-thickness partial volume, beam
  hardening, streaks, head rest, blur, resolution, noise texture, HU calibration, 8-bit export.

Without an ``acquisition`` the slice is "clean" (white pixel noise only, the default field of
view); :func:`~.phantom_acquisition.sample_acquisition` draws a randomised one (domain
randomisation, SynthSeg: Billot et al. 2023). Boundaries are anti-aliased (partial-volume
fractions from signed distances in mm). The hemorrhage mask is "blood fraction >= 0.5"; a
subtype label is 1 iff that lesion's own mask is non-empty on this slice. Masks and brain masks
are the true geometry, untouched by the acquisition.

Conventions of the rendered slice: radiological display, anterior at the top (row 0), the
patient's right on the left of the image (column 0), pixels square, ``pixel_mm`` defaults to
``fov_mm / size``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .phantom_acquisition import CLEAN, Acquisition, cupping, finish, sample_acquisition, streaks_and_holder
from .phantom_anatomy import Head, SliceState, brain_tissue, compose_skull, sample_head, skull_base, skull_tables, start_slice
from .phantom_geometry import FOV_MM, HEAD_HEIGHT_MM, REFERENCE_PIXEL_MM, f32, head_scale, soft
from .phantom_lesions import Lesion, mass_effect, paint_lesions, sample_lesion
from .phantom_mimics import paint_mimics

# Bump when the generator's output changes: a cached phantom of another version is never reused.
PHANTOM_VERSION = 2

__all__ = ["FOV_MM", "HEAD_HEIGHT_MM", "REFERENCE_PIXEL_MM", "PHANTOM_VERSION", "Acquisition", "CLEAN", "Head", "Lesion",
           "PhantomSlice", "head_scale", "render", "render_slice", "sample_acquisition", "sample_head", "sample_lesion",
           "generator_fingerprint"]


@dataclass
class PhantomSlice:
    """One rendered axial slice."""

    hu: np.ndarray  # float32 (H, W), Hounsfield units
    mask: np.ndarray  # uint8 (H, W), 1 = hemorrhage
    brain: np.ndarray  # uint8 (H, W), 1 = intracranial space (brain, CSF, hemorrhage)
    labels: np.ndarray  # float32 (6,), in LABELS order ("any" last)
    spacing: tuple[float, float]  # (row_mm, col_mm)


def generator_fingerprint() -> str:
    """A hash of the generator: its version and the source of every phantom module, so a cache of
    phantoms written by an older generator is never reused (the labels may agree, the voxels not)."""
    h = hashlib.sha256(str(PHANTOM_VERSION).encode())
    here = Path(__file__).parent
    for path in sorted(here.glob("phantom*.py")) + [here / "_fields.py"]:
        h.update(path.read_bytes())
    return h.hexdigest()


def _skull_slab(st: SliceState, acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """Skull, scalp and air around the brain, averaged over the slice thickness (partial-volume
    skull where the skull curves along z); returns the crop and the intracranial fraction."""
    px = st.frame.px
    in_frac = soft(st.din, px)
    crop = compose_skull(st, st.tables, in_frac)
    dz = acq.slice_mm / 2 / HEAD_HEIGHT_MM
    if dz > 0.004:
        for zz in (st.z - dz, st.z + dz):
            tab = skull_tables(st.head, min(1.0, max(0.0, zz)))
            frac = soft(tab.r_in.astype(f32)[st.frame.ib] - st.frame.r, px) * in_frac
            crop += compose_skull(st, tab, frac)
        crop *= f32(1 / 3)
    return crop, in_frac


def render(
    head: Head,
    lesions: Sequence[Lesion],
    z: float,
    rng: np.random.Generator,
    size: int = 512,
    pixel_mm: float | None = None,
    acquisition: Acquisition | None = None,
) -> PhantomSlice:
    """Render one axial slice of ``head`` at level ``z`` with the given lesions.

    ``rng`` only drives the slice-level randomness (sulcal pattern, texture, bone edges, streaks,
    noise); the anatomy and the lesions are fixed by ``head`` and ``lesions``, so consecutive
    slices of one subject are consistent in 3-D. ``acquisition`` (default: clean) says how the
    slice is scanned and exported.
    """
    acq = acquisition or CLEAN
    px = float(pixel_mm) if pixel_mm is not None else acq.fov_mm / size
    st = start_slice(head, z, rng, size, px)
    shift, squeeze = mass_effect(lesions, z)
    brain_tissue(st, rng, shift, squeeze)
    # mimics first: blood painted over a calcification hides it (the mask stays honest)
    paint_mimics(st, rng, 1.0 if acquisition is not None else 0.0)
    mask, labels = paint_lesions(st, lesions)
    skull_base(st)
    cupping(st.brain_hu, st.din, acq)
    crop, in_frac = _skull_slab(st, acq)

    fr = st.frame
    hu = np.full((size, size), -1000.0, dtype=f32)
    hu[fr.rows, fr.cols] = crop
    streaks_and_holder(hu, fr, z, head.b_mm, acq, rng)
    hu = finish(hu, px, head.noise_hu, acq, rng)

    brain_c = in_frac >= 0.5
    for win, bone in st.not_brain:
        brain_c[win] &= ~bone
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
    acquisition: Acquisition | None = None,
) -> PhantomSlice:
    """Render one slice of a freshly drawn head at level ``z`` with the given hemorrhage subtypes.

    Each requested lesion is placed so that this slice passes near its middle, but a lesion can
    still miss the slice (e.g. intraventricular blood where there are no lateral ventricles, or a
    subarachnoid bleed whose sulci are thinner than a pixel); its label is then 0, so the labels
    always agree with ``mask``. ``lesion_scale`` multiplies the linear size of every lesion
    (1.0 is realistic; larger values make an easier curriculum). ``acquisition``: see :func:`render`.
    """
    if not 0.0 <= z <= 1.0:
        raise ValueError(f"z must be in [0, 1], got {z}")
    head = sample_head(rng)
    lesions = []
    for st in subtypes:
        les = sample_lesion(rng, st, head, zc=0.0, lesion_scale=lesion_scale)
        zc = z + rng.uniform(-0.35, 0.35) * les.hz
        lesions.append(Lesion(les.subtype, zc, les.hz, les.blood_hu, les.params))
    return render(head, lesions, z, rng, size=size, pixel_mm=pixel_mm, acquisition=acquisition)
