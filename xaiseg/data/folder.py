"""A generic folder of NIfTI image/mask pairs.

::

    ROOT/images/<name>.nii[.gz]     HU; a volume, or a single 2-D slice
    ROOT/masks/<name>.nii[.gz]      same name; any value > 0 is hemorrhage
    ROOT/labels.csv                 optional: name, any[, slice][, subtype columns]
    brain_dir/<name>.nii[.gz]       optional brain masks

Images and masks are matched by name (the file name without ``.nii``/``.nii.gz``). Every slice
of every volume is an item; the subject is the name. Labels: by default "any" = the slice's mask
is non-empty (read once, when the data set is opened) and the subtypes are unknown (NaN). A
``labels.csv`` overrides them for the names it lists: columns ``name`` and ``any`` (0/1),
optionally ``slice`` (1-based; without it a row applies to every slice of that volume) and any of
the subtype columns ``epidural, intraparenchymal, intraventricular, subarachnoid, subdural``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .base import BadInput, CTSliceDataset, LabelRows, LRUCache, SliceRecord, check_finite, label_vector
from .constants import SUBTYPES
from .files import open_text
from .nifti import (
    check_image_geometry,
    check_same_grid,
    into_image_order,
    load_volume,
    nifti_stem,
    open_nifti,
    read_array,
    slice_item,
    volume_shape,
)


def _nifti_files(folder: Path, bad: BadInput | None = None) -> dict[str, Path]:
    """NIfTI-named entries of ``folder`` by name (whatever they are: opening one that is not a
    regular file is bad input, reported then). With ``bad`` (the images folder), any other
    visible entry is bad input too: a subject never vanishes without a word."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        stem = nifti_stem(p)
        if stem is None:
            if bad is not None and not p.name.startswith("."):
                bad(f"{p}: not a NIfTI file (.nii or .nii.gz) in {folder.name}/; remove it or pass --skip-bad")
            continue
        if stem in out:
            raise DataError(f"{folder}: both {out[stem].name} and {p.name} exist; keep one")
        out[stem] = p
    return out


def _flag(value: str, path: Path, line: int, column: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: line {line}: column {column} is {value!r}, not 0 or 1") from None
    if f not in (0.0, 1.0):
        raise DataError(f"{path}: line {line}: column {column} is {value!r}, not 0 or 1")
    return f


class FolderDataset(CTSliceDataset):
    """Slices of a folder of NIfTI image/mask pairs (see the module docstring)."""

    layout = "folder"

    def __init__(
        self,
        root: str | Path,
        labels_csv: str | Path | None = None,
        brain_dir: str | Path | None = None,
        skip_bad: bool = False,
        cache_volumes: int = 4,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.image_dir, self.mask_dir = self.root / "images", self.root / "masks"
        for d in (self.image_dir, self.mask_dir):
            if not d.is_dir():
                raise DataError(f"{d}: folder not found (expected images/ and masks/ with NIfTI files of the same names)")
        if labels_csv is None and (self.root / "labels.csv").exists():
            labels_csv = self.root / "labels.csv"
        self.labels_csv = Path(labels_csv) if labels_csv is not None else None
        self.brain_dir = Path(brain_dir) if brain_dir is not None else None
        if self.brain_dir is not None and not self.brain_dir.is_dir():
            raise DataError(f"{self.brain_dir}: brain-mask folder not found")
        self._cache = LRUCache(cache_volumes)
        bad = BadInput(skip_bad, str(self.root))

        images = _nifti_files(self.image_dir, bad)
        masks = _nifti_files(self.mask_dir)
        brains = _nifti_files(self.brain_dir) if self.brain_dir is not None else {}
        if not images:
            raise DataError(f"{self.image_dir}: no .nii or .nii.gz files")
        csv_labels, csv_dropped = self._read_labels(set(images), bad) if self.labels_csv is not None else ({}, set())
        self._files: dict[str, tuple[Path, Path, Path | None]] = {}
        records: list[SliceRecord] = []
        for name, img_path in images.items():
            if name in csv_dropped:  # its label rows were bad (already counted): no mask-derived labels
                continue
            try:
                if name not in masks:
                    raise DataError(f"{img_path}: no mask named {name}.nii[.gz] in {self.mask_dir}")
                img = open_nifti(img_path)
                check_image_geometry(img, img_path)
                n_slices = volume_shape(img, img_path)[2]
                m_img = open_nifti(masks[name])
                check_same_grid(m_img, img, masks[name], img_path)
                brain = None
                if self.brain_dir is not None:
                    if name not in brains:
                        raise DataError(f"{img_path}: no brain mask named {name}.nii[.gz] in {self.brain_dir}")
                    brain = brains[name]
                    check_same_grid(open_nifti(brain), img, brain, img_path)
                labels = self._labels_for(name, n_slices, csv_labels, m_img, masks[name], img, img_path)
            except DataError as exc:
                bad(str(exc))
                continue
            self._files[name] = (img_path, masks[name], brain)
            for k in range(n_slices):
                records.append(SliceRecord(name, k + 1, k, labels[k], str(img_path)))
        self.records = records
        self.skipped = bad.messages
        bad.report()
        if not self.records:
            raise DataError(f"{self.root}: no usable slices")

    def _read_labels(self, names: set[str], bad: BadInput) -> tuple[dict[str, dict[int | None, tuple[float, ...]]], set[str]]:
        """Label rows by image and slice, and the images to drop. A malformed row is a DataError,
        or with ``skip_bad`` drops its image (all of its rows) from the data set."""
        path = self.labels_csv
        assert path is not None
        with open_text(path, "label file") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            lower = {h.lower(): h for h in header}
            missing = [c for c in ("name", "any") if c not in lower]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
            reader.fieldnames = header
            table = LabelRows(bad)
            for line, row in enumerate(reader, start=2):
                name = str(row[lower["name"]]).strip()
                stem = nifti_stem(Path(name)) or name
                if stem not in names:
                    bad(f"{path}: line {line}: no image named {name!r} in {self.image_dir}")
                    continue
                table.add(stem, lambda seen: self._label_row(row, lower, path, line, name, seen))
        return table.result(), table.dropped

    @staticmethod
    def _label_row(row: dict, lower: dict[str, str], path: Path, line: int, name: str,
                   seen: dict) -> tuple[int | None, tuple[float, ...]]:
        values = {"any": _flag(row[lower["any"]], path, line, "any")}
        for st in SUBTYPES:
            if st in lower:
                values[st] = _flag(row[lower[st]], path, line, lower[st])
        known = [values[st] for st in SUBTYPES if st in values]
        if known and max(known) > values["any"]:
            raise DataError(f"{path}: line {line}: a subtype is 1 but any is 0")
        slice_no: int | None = None
        if "slice" in lower and str(row[lower["slice"]]).strip() != "":
            text = str(row[lower["slice"]]).strip()
            try:
                f = float(text)
            except ValueError:
                f = float("nan")
            if not (np.isfinite(f) and f == int(f)):
                raise DataError(f"{path}: line {line}: slice is {text!r}, not an integer")
            slice_no = int(f)
        if slice_no in seen:
            raise DataError(f"{path}: line {line}: {name} slice {slice_no} is listed twice")
        return slice_no, label_vector(values)

    def _labels_for(self, name, n_slices, csv_labels, m_img, m_path, img, img_path) -> list[tuple[float, ...]]:
        rows = csv_labels.get(name)
        if rows is not None:
            for s in rows:
                if s is not None and not 1 <= s <= n_slices:
                    raise DataError(f"{self.labels_csv}: {name} slice {s} does not exist ({img_path.name} has {n_slices} slices)")
            out = []
            for k in range(n_slices):
                lab = rows.get(k + 1, rows.get(None))
                if lab is None:
                    raise DataError(f"{self.labels_csv}: no row for {name} slice {k + 1} (and no row without a slice number)")
                out.append(lab)
            return out
        mask = into_image_order(read_array(m_img, m_path), m_img, img, m_path, img_path)
        if mask.dtype.kind == "f":
            check_finite(mask, str(m_path))
        nonempty = (np.asarray(mask) > 0).any(axis=(0, 1))
        return [label_vector({"any": float(v)}) for v in nonempty]

    def _load(self, rec: SliceRecord) -> dict[str, Any]:
        vol = self._cache.get(rec.subject, lambda: load_volume(*self._files[rec.subject]))
        return slice_item(vol, rec.slice_index, f"{rec.source} slice {rec.slice}")
