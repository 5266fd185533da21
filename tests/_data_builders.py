"""Writers of tiny data sets in the real layouts, for the tests of xaiseg.data.

They use nibabel / pydicom / csv directly -- never xaiseg -- so the loaders are checked against
files made independently of them.
"""
from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np

PHYSIONET_HEADER = [
    "PatientNumber",
    "SliceNumber",
    "Intraventricular",
    "Intraparenchymal",
    "Subarachnoid",
    "Epidural",
    "Subdural",
    "No_Hemorrhage",
    "Fracture_Yes_No",
]


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None, oriented: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    if oriented:
        img.set_qform(img.affine, code=1)
        img.set_sform(img.affine, code=1)
    else:
        img.set_qform(None, code=0)
        img.set_sform(None, code=0)
    nib.save(img, str(path))
    return path


def set_scaling(path: Path, slope: float, inter: float) -> None:
    """Write scl_slope/scl_inter straight into a saved (uncompressed) NIfTI-1 header."""
    hdr = np.memmap(path, dtype=np.uint8, mode="r+", shape=(348,))
    hdr[112:116] = np.frombuffer(np.float32(slope).tobytes(), np.uint8)
    hdr[116:120] = np.frombuffer(np.float32(inter).tobytes(), np.uint8)
    hdr.flush()
    del hdr


def write_physionet_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or PHYSIONET_HEADER
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, 0) for k in header})
    return path


def physionet_row(patient: int, slice_no: int, **subtypes: int) -> dict:
    row = {"PatientNumber": patient, "SliceNumber": slice_no, "Fracture_Yes_No": 0}
    names = ["Intraventricular", "Intraparenchymal", "Subarachnoid", "Epidural", "Subdural"]
    for n in names:
        row[n] = int(subtypes.get(n, 0))
    row["No_Hemorrhage"] = int(not any(row[n] for n in names))
    return row


def write_dicom(
    path: Path,
    stored: np.ndarray,
    slope: float = 1.0,
    intercept: float = -1024.0,
    window: tuple[float, float] | None = (40.0, 80.0),
    spacing: tuple[float, float] = (0.5, 0.5),
    patient: str = "P1",
    orientation: tuple[float, ...] | None = None,
) -> Path:
    """A minimal uncompressed CT DICOM file (pydicom)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient
    ds.Modality = "CT"
    arr = np.asarray(stored, dtype=np.int16)
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelSpacing = list(spacing)
    if orientation is not None:
        ds.ImageOrientationPatient = list(orientation)
    ds.PixelData = arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path
