"""Write the synthetic head-CT phantom to disk in the PhysioNet CT-ICH 1.3.1 layout.

::

    OUT/ct_scans/001.nii            int16 HU, (size, size, slices)
    OUT/masks/001.nii               uint8 0/255 hemorrhage
    OUT/brain_masks/001.nii         uint8 0/255 intracranial space (the phantom knows it)
    OUT/hemorrhage_diagnosis_raw_ct.csv
    OUT/phantom.json                parameters, per-subject lesions, per-slice lesion areas
    OUT/contact_sheet.png           (optional) one tile per subject, for a person to look at

Voxel order: ``data[i, j, k]`` with i to the patient's left (image columns), j posterior (image
rows), k superior (slice 1 = most inferior); the affine says so (``diag(-dx, -dy, dz)``, i.e. LPS
voxel axes in RAS world coordinates), so any NIfTI viewer shows the head the right way round.
The whole data set is written into a temporary folder beside OUT and renamed at the end: an
error or Ctrl-C never leaves a half-written OUT behind.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ..output.atomic import output_error
from ..errors import ConfigError
from ..output.lock import folder_lock
from ..output.folder import Owner, foreign_entries, json_record, unexpected_files
from ..output.paths import check_out_dir
from .constants import LABELS, PHYSIONET_COLUMNS, PHYSIONET_CSV, PHYSIONET_CSV_COLUMNS, SUBTYPES
from .phantom import CLEAN, FOV_MM, HEAD_HEIGHT_MM, PHANTOM_VERSION, render, sample_acquisition, sample_head
from .phantom_lesions import draw_lesions
PHANTOM_OUTPUT = Owner("xaiseg phantom", (json_record("phantom.json", "generator", "xaiseg phantom"),))

ACQUISITIONS = ("random", "clean")

def phantom_affine(size: int, slices: int, pixel_mm: float, slice_mm: float) -> np.ndarray:
    """Affine of a phantom volume: LPS voxel axes, centred on the world origin."""
    aff = np.diag([-pixel_mm, -pixel_mm, slice_mm, 1.0])
    centre = np.array([(size - 1) / 2, (size - 1) / 2, (slices - 1) / 2])
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff


def _save_nifti(path: Path, vol: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(vol, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def write_phantom(
    out: Path,
    subjects: int = 20,
    slices_per_subject: int = 32,
    size: int = 512,
    prevalence: float = 0.6,
    seed: int = 0,
    contact_sheet: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    compress: bool = False,
    acquisition: str = "random",
) -> Path:
    """Write a phantom data set in the PhysioNet CT-ICH layout and return its folder.

    ``round(prevalence * subjects)`` subjects (chosen at random) carry one to three hemorrhages
    of random subtypes, each spanning several consecutive slices; the others have none. The
    anatomy, the lesions and the noise are fixed by ``seed`` (the anatomy and lesions do not
    depend on ``size``). Slices are ``HEAD_HEIGHT_MM / slices_per_subject`` mm apart (5 mm for
    32), pixels ``fov / size`` mm (``FOV_MM``: 0.45 mm at 512). The CSV has one row per slice and a slice
    is positive iff its mask is non-empty. ``OUT`` must not exist or be empty, unless
    ``overwrite`` and it holds a phantom written here (its phantom.json): nothing else is ever
    deleted. ``compress`` writes ``.nii.gz``. ``acquisition="random"`` draws each subject's
    scan settings (field of view, hence pixel size; slice thickness, artefacts, noise, HU
    calibration, 8-bit export: :func:`~.phantom_acquisition.sample_acquisition`); ``"clean"``
    scans every head alike (``FOV_MM``, white noise only).
    """
    out = Path(out)
    if subjects < 1 or slices_per_subject < 1 or size < 16:
        raise ConfigError("need at least 1 subject, 1 slice per subject and an in-plane size of 16")
    if not 0.0 <= prevalence <= 1.0:
        raise ConfigError(f"prevalence must be in [0, 1], got {prevalence}")
    if subjects > 999:
        raise ConfigError("at most 999 subjects (file names are three digits, as in PhysioNet)")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    if acquisition not in ACQUISITIONS:
        raise ConfigError(f"--acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
    _check_replaceable(out, overwrite)
    with _phantom_folder(out):
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the data set is not
        try:
            _write_into(tmp, subjects, slices_per_subject, size, prevalence, seed, contact_sheet, progress, compress,
                        acquisition == "random")
            _check_replaceable(out, overwrite)  # again, under the lock
            shutil.rmtree(out)  # only phantom files (checked): nothing a user put there
            os.replace(tmp, out)
        except OSError as exc:  # a full disk, ...: one line naming the file as it would be in OUT
            name = Path(exc.filename or tmp)
            where = out / name.relative_to(tmp) if name.is_relative_to(tmp) else name
            raise output_error(where, exc) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# everything `xaiseg phantom` writes: --overwrite deletes a folder only if it holds nothing else
_PHANTOM_FILES = ("ct_scans/*.nii", "ct_scans/*.nii.gz", "masks/*.nii", "masks/*.nii.gz", "brain_masks/*.nii",
                  "brain_masks/*.nii.gz", PHYSIONET_CSV, "phantom.json", "contact_sheet.png")


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """OUT is new or empty, or (``overwrite``) a phantom written here and nothing else."""
    check_out_dir(out, "OUT")
    if out.is_symlink():  # OUT is replaced as a whole: a link would be replaced, not its folder
        raise ConfigError(f"{out} is a symbolic link; give the folder it points to")
    if not out.is_dir() or not foreign_entries(out):
        return
    if not overwrite:
        raise ConfigError(f"{out} is not empty; choose another folder or pass --overwrite")
    if not PHANTOM_OUTPUT.owns(out):
        raise ConfigError(f"{out} is not a phantom written by `xaiseg phantom` (no phantom.json); "
                          "--overwrite only replaces those; choose another folder")
    extra = unexpected_files(out, _PHANTOM_FILES)
    if extra:
        raise ConfigError(f"{out} holds {extra[0]!r}, which `xaiseg phantom` did not write; --overwrite would "
                          "delete it: move it out first or choose another folder")


@contextmanager
def _phantom_folder(out: Path) -> Iterator[None]:
    """OUT exists (created empty if new, removed again on failure) and is locked."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(out, "OUT"):
            yield
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _write_into(
    root: Path,
    subjects: int,
    n_slices: int,
    size: int,
    prevalence: float,
    seed: int,
    contact_sheet: bool,
    progress: bool,
    compress: bool,
    randomise: bool = True,
) -> None:
    from ..progress import progress_bar

    ext = ".nii.gz" if compress else ".nii"
    for d in ("ct_scans", "masks", "brain_masks"):
        (root / d).mkdir()
    seq = np.random.SeedSequence(seed)
    top = np.random.default_rng(seq.spawn(1)[0])
    positive = np.zeros(subjects, dtype=bool)
    positive[top.permutation(subjects)[: int(round(prevalence * subjects))]] = True
    subject_seqs = seq.spawn(subjects + 1)[1:]

    rows: list[dict] = []
    meta_subjects, sheet_tiles = [], []
    bar = progress_bar(total=subjects * n_slices, desc="phantom", unit="slice", enabled=progress)
    try:
        for s in range(subjects):
            meta, tile = _write_subject(root, s, subject_seqs[s], bool(positive[s]), n_slices, size, ext,
                                        randomise, rows, bar)
            meta_subjects.append(meta)
            sheet_tiles.append(tile)
    finally:
        bar.close()

    with open(root / PHYSIONET_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(PHYSIONET_CSV_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "generator": "xaiseg phantom",
        "version": PHANTOM_VERSION,
        "seed": seed,
        "subjects": subjects,
        "slices_per_subject": n_slices,
        "size": size,
        "prevalence": prevalence,
        "acquisition": "random" if randomise else "clean",
        "pixel_mm": None if randomise else FOV_MM / size,  # random: per subject (its field of view)
        "slice_mm": HEAD_HEIGHT_MM / n_slices,
        "voxel_axes": "i: patient left (image columns), j: posterior (image rows), k: superior",
        "subject_list": meta_subjects,
    }
    (root / "phantom.json").write_text(json.dumps(meta, indent=1))
    if contact_sheet:
        _contact_sheet(root / "contact_sheet.png", sheet_tiles)


def _write_subject(root: Path, s: int, subject_seq: np.random.SeedSequence, positive: bool, n_slices: int,
                   size: int, ext: str, randomise: bool, rows: list[dict], bar) -> tuple[dict, tuple]:
    """Render and save one head's volumes; append its CSV rows; return its phantom.json entry and
    its contact-sheet tile (the slice with the most hemorrhage)."""
    anat_seq, slice_seq = subject_seq.spawn(2)
    arng = np.random.default_rng(anat_seq)
    head = sample_head(arng)
    lesions = draw_lesions(arng, head) if positive else []
    acq = sample_acquisition(arng) if randomise else CLEAN
    pixel_mm, slice_mm = acq.fov_mm / size, HEAD_HEIGHT_MM / n_slices
    zs = (np.arange(n_slices) + 0.5) / n_slices
    # (slice, row, column) in C order is (i, j, k) in Fortran order: what NIfTI stores
    ct = np.empty((n_slices, size, size), dtype=np.int16)
    msk = np.empty((n_slices, size, size), dtype=np.uint8)
    brn = np.empty((n_slices, size, size), dtype=np.uint8)
    areas = []
    for k, (z, sseq) in enumerate(zip(zs, slice_seq.spawn(n_slices))):
        sl = render(head, lesions, float(z), np.random.default_rng(sseq), size=size, pixel_mm=pixel_mm, acquisition=acq)
        ct[k] = np.rint(sl.hu)
        msk[k] = sl.mask * np.uint8(255)
        brn[k] = sl.brain * np.uint8(255)
        areas.append(int(sl.mask.sum()))
        row = {"PatientNumber": s + 1, "SliceNumber": k + 1}
        for st in SUBTYPES:
            row[PHYSIONET_COLUMNS[st]] = int(sl.labels[SUBTYPES.index(st)])
        row["No_Hemorrhage"] = int(sl.labels[LABELS.index("any")] == 0)
        row["Fracture_Yes_No"] = 0
        rows.append(row)
        bar.update(1)
    name = f"{s + 1:03d}{ext}"
    affine = phantom_affine(size, n_slices, pixel_mm, slice_mm)
    _save_nifti(root / "ct_scans" / name, ct.transpose(2, 1, 0), affine)
    _save_nifti(root / "masks" / name, msk.transpose(2, 1, 0), affine)
    _save_nifti(root / "brain_masks" / name, brn.transpose(2, 1, 0), affine)
    k = int(np.argmax(areas)) if max(areas) > 0 else n_slices // 2  # the middle slice without hemorrhage
    meta = {
        "PatientNumber": s + 1,
        "file": name,
        "pixel_mm": pixel_mm,
        "acquisition": {key: (list(v) if isinstance(v, tuple) else v) for key, v in acq.__dict__.items()},
        "lesions": [
            {"subtype": les.subtype, "z_centre": round(les.zc, 4), "z_half_extent": round(les.hz, 4),
             "blood_hu": round(les.blood_hu, 1)}
            for les in lesions
        ],
        "lesion_px_per_slice": areas,
    }
    return meta, (s + 1, k + 1, ct[k].astype(np.float32), msk[k] > 0)


def _contact_sheet(path: Path, tiles: list[tuple[int, int, np.ndarray, np.ndarray]]) -> None:
    """One tile per subject (its slice with the most hemorrhage), brain window, mask outline."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(tiles)
    cols = min(n, 5)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3 * cols, 3.2 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (subj, sl, hu, m) in zip(axes.ravel(), tiles):
        ax.imshow(hu, cmap="gray", vmin=-20, vmax=100, interpolation="nearest")
        if m.any():
            ax.contour(m.astype(float), levels=[0.5], colors="red", linewidths=0.6)
        ax.set_title(f"{subj:03d} slice {sl}" + ("" if m.any() else " (no ICH)"), fontsize=8)
    fig.suptitle("xaiseg phantom: brain window 40/120 HU, hemorrhage outlined in red", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
