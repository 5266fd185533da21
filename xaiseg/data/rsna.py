"""RSNA Intracranial Hemorrhage Detection 2019 (DICOM, slice labels, no masks).

::

    ROOT/stage_2_train/ID_000012eaf.dcm
    ROOT/stage_2_train.csv      ID,Label rows "ID_000012eaf_epidural,0" (5 subtypes + any)

Each DICOM file is one item (``slice`` 1, ``slice_index`` 0). HU = stored value x
RescaleSlope + RescaleIntercept. The header window (WindowCenter/WindowWidth, first value if
several) is in the item as ``window`` when the header has one. There are no masks: items have no ``mask`` and the data
set has ``has_masks = False``.

``files`` selects the images (IDs like ``ID_000012eaf``, file names or paths, or a text/CSV file
with one per line, or a column ``ID``/``image``): with it, the image folder is never listed and
no DICOM is opened up front -- the 750k-file folder costs one pass over the label CSV. Without
it, the image folder is listed once. Every selected image needs its six label rows; one without
is an error naming the file. The subject defaults to the image ID (RSNA's CSV has no patient
column): pass ``subjects`` -- a {image ID: patient} mapping, a CSV with columns ``ID`` (or
``SOPInstanceUID``/``image``) and ``PatientID``, or ``"header"`` to read PatientID from each
DICOM header (opens every file once) -- to make folds subject-wise.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from ..errors import DataError
from .base import BadInput, CTSliceDataset, LabelRows, SliceRecord, check_finite, check_spacing, label_vector
from .constants import LABELS
from .files import open_text, regular_file


def _image_id(entry: str) -> str:
    name = Path(str(entry).strip()).name
    return name[:-4] if name.lower().endswith(".dcm") else name


def _read_id_list(files: str | Path | Iterable[str]) -> list[str]:
    if isinstance(files, (str, Path)) and (Path(files).exists() or Path(files).is_symlink()):
        path = Path(files)
        with open_text(path, "file list") as fh:
            first = fh.readline()
            fh.seek(0)
            cols = [c.strip() for c in first.split(",")]
            key = next((c for c in ("ID", "image", "Image", "id") if c in cols), None)
            if key is not None:
                return [_image_id(r[key]) for r in csv.DictReader(fh) if r.get(key)]
            return [_image_id(line) for line in fh if line.strip()]
    if isinstance(files, (str, Path)):
        raise DataError(f"{files}: file list not found")
    return [_image_id(f) for f in files]


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


class RSNADataset(CTSliceDataset):
    """Slices of the RSNA 2019 training set (see the module docstring)."""

    layout = "rsna"
    has_masks = False

    def __init__(
        self,
        root: str | Path,
        csv_path: str | Path | None = None,
        image_dir: str | Path | None = None,
        files: str | Path | Iterable[str] | None = None,
        subjects: str | Path | Mapping[str, str] | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.image_dir = Path(image_dir) if image_dir is not None else self.root / "stage_2_train"
        self.csv_path = Path(csv_path) if csv_path is not None else self.root / "stage_2_train.csv"
        if not self.image_dir.is_dir():
            raise DataError(f"{self.image_dir}: image folder not found (expected RSNA's stage_2_train/)")
        self._bad = bad = BadInput(skip_bad, str(self.root))
        if files is None:
            ids = self._list_images(bad)
        else:
            ids = list(dict.fromkeys(_read_id_list(files)))
            if not ids:
                raise DataError("the file list is empty")
        labels, dropped = self._read_csv(set(ids), bad)
        subject_of = self._subjects(subjects, ids)
        records = []
        for image_id in ids:
            if image_id in dropped:  # a bad label row, already counted
                continue
            path = self.image_dir / f"{image_id}.dcm"
            got = labels.get(image_id, {})
            missing = [n for n in LABELS if n not in got]
            if missing:
                what = "no row" if not got else f"no row for {', '.join(missing)}"
                bad(f"{path}: {what} in {self.csv_path.name}")
                continue
            if files is not None:
                try:
                    regular_file(path, "DICOM file")
                except DataError as exc:
                    bad(str(exc))
                    continue
            records.append(SliceRecord(subject_of.get(image_id, image_id), 1, 0, label_vector(got), str(path)))
        self.records = records
        self.skipped = bad.messages
        bad.report()
        if not self.records:
            raise DataError(f"{self.root}: no usable images")

    def _list_images(self, bad: BadInput) -> list[str]:
        """IDs of the ``.dcm`` entries of the image folder that are regular files; any other
        (a FIFO, which would block the reader forever, a folder, a dangling link) is bad input."""
        ids = []
        with os.scandir(self.image_dir) as it:
            for e in sorted(it, key=lambda e: e.name):
                if not e.name.lower().endswith(".dcm"):
                    continue
                if e.is_file():  # follows links: a link to a regular file is fine
                    ids.append(_image_id(e.name))
                else:
                    try:
                        regular_file(Path(e.path), "DICOM file")
                    except DataError as exc:
                        bad(str(exc))
        if not ids:
            raise DataError(f"{self.image_dir}: no .dcm files")
        return ids

    def _read_csv(self, wanted: set[str], bad: BadInput) -> tuple[dict[str, dict[str, float]], set[str]]:
        """Labels of the wanted images, and the images to drop: a malformed or conflicting row is
        a DataError, or with ``skip_bad`` drops its image."""
        table = LabelRows(bad)
        with open_text(self.csv_path, "label file") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if header[:2] != ["ID", "Label"]:
                raise DataError(f"{self.csv_path}: expected the columns ID,Label, got {','.join(header) or 'nothing'}")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < 2:
                    bad(f"{self.csv_path}: line {line}: expected ID,Label")
                    continue
                image_id, _, label = row[0].strip().rpartition("_")
                if image_id in wanted:
                    table.add(image_id, lambda seen: (label, self._label_value(row, label, line, seen)))
        return table.result(), table.dropped

    def _label_value(self, row: list[str], label: str, line: int, seen: dict[str, float]) -> float:
        if label not in LABELS:
            raise DataError(f"{self.csv_path}: line {line}: unknown label {label!r} in {row[0]!r}")
        try:
            value = float(row[1])
        except ValueError:
            raise DataError(f"{self.csv_path}: line {line}: label {row[1]!r} is not 0 or 1") from None
        if value not in (0.0, 1.0):
            raise DataError(f"{self.csv_path}: line {line}: label {row[1]!r} is not 0 or 1")
        if label in seen and seen[label] != value:
            raise DataError(f"{self.csv_path}: line {line}: {row[0]} has conflicting rows")
        return value

    def _subjects(self, subjects: str | Path | Mapping[str, str] | None, ids: list[str]) -> dict[str, str]:
        if subjects is None:
            return {}
        if isinstance(subjects, Mapping):
            return {str(k): str(v) for k, v in subjects.items()}
        if str(subjects) == "header":
            import pydicom

            out = {}
            for image_id in ids:
                path = self.image_dir / f"{image_id}.dcm"
                if not path.is_file():  # a FIFO would block; reported when the records are built
                    continue
                try:
                    ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["PatientID"])
                    out[image_id] = str(ds.PatientID)
                except Exception:
                    continue  # a missing/unreadable file is reported when the records are built/read
            return out
        path = Path(subjects)
        with open_text(path, "subject table") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            key = next((c for c in ("ID", "SOPInstanceUID", "image") if c in cols), None)
            if key is None or "PatientID" not in cols:
                raise DataError(f"{path}: needs columns ID (or SOPInstanceUID/image) and PatientID")
            return {_image_id(r[key]): str(r["PatientID"]) for r in reader}

    def _load(self, rec: SliceRecord) -> dict[str, Any]:
        return read_dicom_slice(Path(rec.source))

    def validate(self, progress: bool = True) -> list[str]:
        """Open every selected file once and find unreadable ones (read errors, bad rescale,
        NaN/Inf). With ``skip_bad`` they are dropped from ``records``; otherwise the first one
        raises. Returns the messages of the dropped files."""
        from ..progress import progress_bar

        keep, dropped = [], []
        for rec in progress_bar(self.records, desc="checking DICOM files", enabled=progress):
            try:
                read_dicom_slice(Path(rec.source))
            except DataError as exc:
                self._bad(str(exc))
                dropped.append(str(exc))
                continue
            keep.append(rec)
        self.records = keep
        self.skipped = self._bad.messages
        return dropped


def _pixel_spacing(ps: Any, path: Path) -> tuple[float, float]:
    """(row_mm, col_mm) from PixelSpacing; missing, zero, negative or NaN is an error: areas and
    HD95 in mm would otherwise rest on an invented spacing."""
    try:
        spacing = (float(ps[0]), float(ps[1])) if ps is not None and len(ps) == 2 else None
    except (TypeError, ValueError):
        spacing = None
    if spacing is None:
        raise DataError(f"{path}: no usable PixelSpacing ({ps!r}); the header must give the pixel size in mm")
    check_spacing(spacing, f"{path}: PixelSpacing")
    return spacing


def read_dicom_slice(path: Path) -> dict[str, Any]:
    """One CT DICOM file as an item: HU image, spacing, header window."""
    import pydicom

    regular_file(path, "DICOM file")  # a FIFO would block dcmread forever
    try:
        ds = pydicom.dcmread(str(path))
        stored = ds.pixel_array
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable DICOM ({msg})") from None
    if stored.ndim != 2:
        raise DataError(f"{path}: pixel data of shape {stored.shape}; expected one 2-D slice")
    if stored.size == 0:
        raise DataError(f"{path}: empty image")
    slope, intercept = _first(ds.get("RescaleSlope")), _first(ds.get("RescaleIntercept"))
    if slope is None or intercept is None:
        raise DataError(f"{path}: no RescaleSlope/RescaleIntercept, cannot convert to HU")
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    # display: rows posterior, columns to the patient's left (flip if the header says otherwise)
    iop = ds.get("ImageOrientationPatient")
    if iop is not None and len(iop) == 6:
        row_dir, col_dir = np.array(iop[:3], float), np.array(iop[3:], float)  # along a row, along a column
        if abs(row_dir[0]) > 0.7 and row_dir[0] < 0:
            hu = hu[:, ::-1]
        if abs(col_dir[1]) > 0.7 and col_dir[1] < 0:
            hu = hu[::-1, :]
    hu = np.ascontiguousarray(hu)
    check_finite(hu, str(path))
    spacing = _pixel_spacing(ds.get("PixelSpacing"), path)
    wc, ww = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    item: dict[str, Any] = {"image": torch.from_numpy(hu), "spacing": spacing}
    if wc is not None and ww is not None:
        item["window"] = (wc, ww)
    return item
