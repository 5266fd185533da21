"""PhysioNet CT-ICH 1.3.1 (and the xaiseg phantom, which writes the same layout).

::

    ROOT/ct_scans/049.nii           HU
    ROOT/masks/049.nii              0/255 hemorrhage (any value > 0 counts as hemorrhage)
    ROOT/hemorrhage_diagnosis_raw_ct.csv
    ROOT/brain_masks/049.nii        optional (the phantom writes it), or ``brain_dir=``

Slices come from the CSV rows, matched to voxels by (PatientNumber, SliceNumber) -- slice
number n is ``data[:, :, n - 1]`` of ``NNN.nii`` (NNN = PatientNumber, zero-padded to three
digits or not; ``.nii`` or ``.nii.gz``) -- never by directory listing order. Volume slices
without a CSV row are not items. Labels: the five subtype columns, and "any" = 1 unless
``No_Hemorrhage`` is 1 (or any subtype is set).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .base import BadInput, CTSliceDataset, LabelRows, LRUCache, SliceRecord, label_vector
from .constants import PHYSIONET_COLUMNS, PHYSIONET_CSV
from .files import open_text
from .nifti import (
    check_image_geometry,
    check_same_grid,
    load_volume,
    open_nifti,
    slice_item,
    volume_shape,
)

_REQUIRED = ("PatientNumber", "SliceNumber", "No_Hemorrhage") + tuple(PHYSIONET_COLUMNS.values())


def _find_volume(folder: Path, patient: int) -> Path | None:
    found = [folder / f"{stem}{suf}" for stem in dict.fromkeys((f"{patient:03d}", str(patient)))
             for suf in (".nii", ".nii.gz") if (folder / f"{stem}{suf}").exists()]
    if len(found) > 1:  # e.g. 049.nii beside 49.nii.gz: which one is patient 49 is a guess
        raise DataError(f"{folder}: patient {patient} has {len(found)} files ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def _int(value: str, csv_path: Path, line: int, column: str) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{csv_path}: line {line}: column {column} is {value!r}, not a number") from None
    if not np.isfinite(f) or f != int(f):
        raise DataError(f"{csv_path}: line {line}: column {column} is {value!r}, not an integer")
    return int(f)


class PhysioNetDataset(CTSliceDataset):
    """Slices of a PhysioNet CT-ICH folder (see the module docstring)."""

    layout = "physionet"

    def __init__(
        self,
        root: str | Path,
        brain_dir: str | Path | None = None,
        skip_bad: bool = False,
        cache_volumes: int = 4,
        csv_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: data folder not found")
        self.ct_dir = self.root / "ct_scans"
        self.mask_dir = self.root / "masks"
        self.csv_path = Path(csv_path) if csv_path is not None else self.root / PHYSIONET_CSV
        for d in (self.ct_dir, self.mask_dir):
            if not d.is_dir():
                raise DataError(f"{d}: folder not found (expected the PhysioNet CT-ICH layout: ct_scans/, masks/, {PHYSIONET_CSV})")
        if brain_dir is None and (self.root / "brain_masks").is_dir():
            brain_dir = self.root / "brain_masks"
        self.brain_dir = Path(brain_dir) if brain_dir is not None else None
        if self.brain_dir is not None and not self.brain_dir.is_dir():
            raise DataError(f"{self.brain_dir}: brain-mask folder not found")
        self._cache = LRUCache(cache_volumes)
        bad = BadInput(skip_bad, str(self.root))
        rows = self._read_csv(bad)
        self._files: dict[str, tuple[Path, Path, Path | None]] = {}
        records = []
        for patient in sorted(rows):
            subject = f"{patient:03d}"
            try:
                files, n_slices = self._check_subject(patient)
            except DataError as exc:
                bad(str(exc))
                continue
            ok = True
            for slice_no, _ in sorted(rows[patient].items()):
                if not 1 <= slice_no <= n_slices:
                    bad(f"{self.csv_path}: patient {patient} slice {slice_no} does not exist ({files[0].name} has {n_slices} slices)")
                    ok = False
                    break
            if not ok:
                continue
            self._files[subject] = files
            for slice_no, labels in sorted(rows[patient].items()):
                records.append(SliceRecord(subject, slice_no, slice_no - 1, labels, str(files[0])))
        self.records = records
        self.skipped = bad.messages
        bad.report()
        if not self.records:
            raise DataError(f"{self.root}: no usable slices")

    # ------------------------------------------------------------------------------------------
    def _read_csv(self, bad: BadInput) -> dict[int, dict[int, tuple[float, ...]]]:
        """Label rows by patient and slice. A malformed or duplicated row is a DataError, or with
        ``skip_bad`` drops its patient (all of its rows: half a subject's labels mislead)."""
        with open_text(self.csv_path, "label file") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise DataError(f"{self.csv_path}: missing column(s) {', '.join(missing)}")
            reader.fieldnames = header
            table = LabelRows(bad)
            for line, row in enumerate(reader, start=2):
                try:
                    patient = _int(row["PatientNumber"], self.csv_path, line, "PatientNumber")
                except DataError as exc:
                    bad(str(exc))  # which subject it belongs to is unknown: only the row goes
                    continue
                table.add(patient, lambda seen: self._label_row(row, line, patient, seen))
        rows = table.result()
        if not rows:
            raise DataError(f"{self.csv_path}: no rows")
        return rows

    def _label_row(self, row: dict, line: int, patient: int, seen: dict) -> tuple[int, tuple[float, ...]]:
        slice_no = _int(row["SliceNumber"], self.csv_path, line, "SliceNumber")
        values = {st: float(_int(row[col], self.csv_path, line, col) > 0) for st, col in PHYSIONET_COLUMNS.items()}
        no_hem = _int(row["No_Hemorrhage"], self.csv_path, line, "No_Hemorrhage") > 0
        if slice_no in seen:
            raise DataError(f"{self.csv_path}: line {line}: patient {patient} slice {slice_no} is listed twice")
        values["any"] = float(max(max(values.values()), 0.0 if no_hem else 1.0))
        return slice_no, label_vector(values)

    def _check_subject(self, patient: int) -> tuple[tuple[Path, Path, Path | None], int]:
        """Header-only checks of one subject's files; returns the files and the slice count."""
        ct = _find_volume(self.ct_dir, patient)
        if ct is None:
            raise DataError(f"{self.ct_dir}/{patient:03d}.nii: file not found (patient {patient} is in {self.csv_path.name})")
        mask = _find_volume(self.mask_dir, patient)
        if mask is None:
            raise DataError(f"{self.mask_dir}/{patient:03d}.nii: mask file not found for {ct.name}")
        img = open_nifti(ct)
        check_image_geometry(img, ct)
        shape = volume_shape(img, ct)
        check_same_grid(open_nifti(mask), img, mask, ct)
        brain = None
        if self.brain_dir is not None:
            brain = _find_volume(self.brain_dir, patient)
            if brain is None:
                raise DataError(f"{self.brain_dir}/{patient:03d}.nii: brain-mask file not found for {ct.name}")
            check_same_grid(open_nifti(brain), img, brain, ct)
        return (ct, mask, brain), shape[2]

    def _load(self, rec: SliceRecord) -> dict[str, Any]:
        vol = self._cache.get(rec.subject, lambda: load_volume(*self._files[rec.subject]))
        return slice_item(vol, rec.slice_index, f"{rec.source} slice {rec.slice}")
