"""The second battery of bad inputs for the data layer: files that are not regular files, label
CSVs in other encodings, broken geometry (NaN/singular affines, bad pixel sizes, masks rotated or
shifted against their image), items of passed-in data sets. Every one is a one-line DataError,
or with skip_bad a counted, reported skip -- never a traceback, a hang or a silent guess."""
from __future__ import annotations

import codecs
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests._guards import no_hang  # noqa: F401 (fixture)
from tests._data_builders import physionet_row, save_nifti, write_dicom, write_physionet_csv
from xaiseg.data import open_dataset
from xaiseg.data.base import check_item
from xaiseg.data.files import open_text, text_encoding
from xaiseg.data.nifti import load_volume
from xaiseg.errors import DataError

SUB = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]
AFF = np.diag([-0.8, -0.9, 3.0, 1.0])


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# ---- files that are not regular files --------------------------------------------------------
def _rsna(root: Path, ids=("ID_aaa", "ID_bbb")) -> Path:
    img = root / "stage_2_train"
    for i in ids:
        write_dicom(img / f"{i}.dcm", np.full((3, 4), 1000, np.int16))
    lines = ["ID,Label"] + [f"{i}_{n},0" for i in ids for n in SUB]
    (root / "stage_2_train.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("kind", ["fifo", "folder", "dangling link", "socket"])
def test_rsna_folder_with_a_non_regular_dcm(tmp_path, no_hang, kind):
    import socket

    root = _rsna(tmp_path / "rsna")
    bad = root / "stage_2_train" / "ID_ccc.dcm"
    sock = None
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "folder":
        bad.mkdir()
    elif kind == "dangling link":
        bad.symlink_to(tmp_path / "gone.dcm")
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(bad))
    try:
        with pytest.raises(DataError, match="ID_ccc.dcm: DICOM file is .*not a regular file") as info:
            open_dataset(root, "rsna")
        _one_line(info)
        with pytest.warns(RuntimeWarning, match="skipped 1 bad item"):
            ds = open_dataset(root, "rsna", skip_bad=True)
        assert [Path(r.source).name for r in ds.records] == ["ID_aaa.dcm", "ID_bbb.dcm"]
        assert len(ds.skipped) == 1 and "ID_ccc.dcm" in ds.skipped[0]
    finally:
        if sock is not None:
            sock.close()


def test_rsna_file_list_naming_a_fifo_and_a_fifo_read_directly(tmp_path, no_hang):
    from xaiseg.data.rsna import read_dicom_slice

    root = _rsna(tmp_path / "rsna", ids=("ID_aaa", "ID_ccc"))
    (root / "stage_2_train" / "ID_ccc.dcm").unlink()
    os.mkfifo(root / "stage_2_train" / "ID_ccc.dcm")
    for subjects in (None, "header"):  # "header" reads every selected file's PatientID first
        with pytest.raises(DataError, match="FIFO"):
            open_dataset(root, "rsna", files=["ID_aaa", "ID_ccc"], subjects=subjects)
    with pytest.raises(DataError, match="FIFO"):
        read_dicom_slice(root / "stage_2_train" / "ID_ccc.dcm")
    os.mkfifo(tmp_path / "labels.csv")
    with pytest.raises(DataError, match="label file is a FIFO"):
        open_dataset(root, "rsna", files=["ID_aaa"], csv_path=tmp_path / "labels.csv")
    with pytest.raises(DataError, match="file list is a FIFO"):
        open_dataset(root, "rsna", files=tmp_path / "labels.csv")


def _physionet(root: Path, n: int = 2) -> Path:
    for p in range(1, n + 1):
        save_nifti(root / "ct_scans" / f"{p:03d}.nii", np.full((4, 5, 2), 30.0, np.float32), AFF)
        save_nifti(root / "masks" / f"{p:03d}.nii", np.zeros((4, 5, 2), np.uint8), AFF)
    write_physionet_csv(root / "hemorrhage_diagnosis_raw_ct.csv", [physionet_row(p, s) for p in range(1, n + 1) for s in (1, 2)])
    return root


@pytest.mark.parametrize("where", ["ct_scans/002.nii", "masks/002.nii", "hemorrhage_diagnosis_raw_ct.csv"])
def test_physionet_fifo_anywhere(tmp_path, no_hang, where):
    root = _physionet(tmp_path / "p")
    (root / where).unlink()
    os.mkfifo(root / where)
    with pytest.raises(DataError, match="is a FIFO") as info:
        open_dataset(root, "physionet")
    _one_line(info)
    if where.endswith(".nii"):
        with pytest.warns(RuntimeWarning):
            ds = open_dataset(root, "physionet", skip_bad=True)
        assert ds.subjects == ["001"] and len(ds.skipped) == 1


def _folder(root: Path, names=("a", "b")) -> Path:
    for n in names:
        save_nifti(root / "images" / f"{n}.nii", np.full((4, 5, 2), 30.0, np.float32), AFF)
        save_nifti(root / "masks" / f"{n}.nii", np.zeros((4, 5, 2), np.uint8), AFF)
    return root


@pytest.mark.parametrize("entry", ["fifo c.nii", "folder c.nii.gz", "dangling c.nii", "file c.mha", "folder old",
                                   "labels fifo"])
def test_folder_layout_never_drops_an_image_silently(tmp_path, no_hang, entry):
    root = _folder(tmp_path / "f")
    kind, name = entry.split()
    target = root / "images" / name
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    elif kind == "dangling":
        target.symlink_to(tmp_path / "gone.nii")
    elif kind == "file":
        target.write_bytes(b"a MetaImage the loader cannot read")
    else:
        os.mkfifo(root / "labels.csv")
    with pytest.raises(DataError) as info:
        open_dataset(root, "folder")
    _one_line(info)
    if kind == "labels":
        assert "labels.csv: label file is a FIFO" in str(info.value)
        return
    assert name in str(info.value)
    with pytest.warns(RuntimeWarning, match="skipped 1 bad item"):
        ds = open_dataset(root, "folder", skip_bad=True)
    assert ds.subjects == ["a", "b"] and len(ds.skipped) == 1 and name in ds.skipped[0]


def test_folder_layout_hidden_files_are_ignored_and_upper_case_names_read(tmp_path):
    root = _folder(tmp_path / "f", names=("a",))
    (root / "images" / ".DS_Store").write_bytes(b"\0")
    save_nifti(root / "images" / "B.NII.GZ", np.full((4, 5, 2), 30.0, np.float32), AFF)
    save_nifti(root / "masks" / "B.nii", np.zeros((4, 5, 2), np.uint8), AFF)
    ds = open_dataset(root, "folder")
    assert ds.subjects == ["B", "a"] and ds[2]["image"].shape == (5, 4)


# ---- text encodings --------------------------------------------------------------------------
LABELS_TEXT = "name,any\nsujet_é,1\nb,0\n"


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("latin-1", b""),
                                           ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
                                           ("utf-32-le", codecs.BOM_UTF32_LE)])
def test_label_csv_encodings_are_read(tmp_path, encoding, bom):
    root = _folder(tmp_path / "f", names=("sujet_é", "b"))
    (root / "labels.csv").write_bytes(bom + LABELS_TEXT.encode(encoding))
    ds = open_dataset(root, "folder")
    assert {r.subject: r.labels[-1] for r in ds.records} == {"sujet_é": 1.0, "b": 0.0}


@pytest.mark.parametrize("data, message", [
    (LABELS_TEXT.encode("utf-16-le"), "NUL bytes .*save it as UTF-8"),  # UTF-16 without its mark
    (b"name,any\na,1\x00\n", "NUL bytes"),
    (codecs.BOM_UTF16_LE + b"n\x00a\x00m", "not valid UTF-16"),  # truncated: an odd number of bytes
])
def test_label_csv_that_cannot_be_decoded_is_one_line(tmp_path, data, message):
    root = _folder(tmp_path / "f")
    (root / "labels.csv").write_bytes(data)
    with pytest.raises(DataError, match=message) as info:
        open_dataset(root, "folder")
    assert "labels.csv" in _one_line(info)


def test_encodings_of_every_reader(tmp_path):
    # the RSNA and PhysioNet label CSVs go through the same rule
    root = _rsna(tmp_path / "rsna")
    text = (root / "stage_2_train.csv").read_text()
    (root / "stage_2_train.csv").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert len(open_dataset(root, "rsna")) == 2
    p = _physionet(tmp_path / "p")
    csv_text = (p / "hemorrhage_diagnosis_raw_ct.csv").read_text()
    (p / "hemorrhage_diagnosis_raw_ct.csv").write_bytes(csv_text.encode("latin-1"))
    assert len(open_dataset(p, "physionet")) == 4
    (tmp_path / "huge.csv").write_bytes(b"a," + b"x" * 200_000 + b"\n")  # longer than csv's field limit
    with pytest.raises(DataError, match="not a readable CSV"):
        with open_text(tmp_path / "huge.csv") as fh:
            import csv

            list(csv.reader(fh))
    assert text_encoding(tmp_path / "huge.csv") == "utf-8"


# ---- geometry --------------------------------------------------------------------------------
def _pair(root: Path, mask_affine: np.ndarray, mask: np.ndarray | None = None, img_affine=AFF) -> tuple[Path, Path]:
    img = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    m = np.zeros((4, 5, 3), np.uint8) if mask is None else mask
    m[1, 2, 1] = 1
    return (save_nifti(root / "images" / "a.nii", img, img_affine),
            save_nifti(root / "masks" / "a.nii", m, mask_affine))


def _rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    r = np.eye(4)
    r[:2, :2] = [[c, -s], [s, c]]
    return r


@pytest.mark.parametrize("mask_affine, message", [
    (_rot_z(45) @ AFF, "rotated or scaled against its image"),
    (_rot_z(3) @ AFF, "rotated or scaled"),  # 3 degrees: 0.26 voxel off at the far corner of this 4x5 grid
    (np.diag([-1.6, -0.9, 3.0, 1.0]), "rotated or scaled"),  # another voxel size
    (AFF + np.array([[0, 0, 0, 3 * 0.8], [0] * 4, [0] * 4, [0] * 4]), r"shifted by \(-3.0, 0.0, 0.0\) voxels"),
    (AFF + np.array([[0, 0, 0, 0.4], [0] * 4, [0] * 4, [0] * 4]), "shifted by"),  # half a voxel
])
def test_masks_that_cannot_be_aligned_are_refused(tmp_path, mask_affine, message):
    _pair(tmp_path, mask_affine)
    with pytest.raises(DataError, match=message) as info:
        open_dataset(tmp_path, "folder")
    assert "masks/a.nii" in _one_line(info)


def test_a_flipped_and_permuted_mask_lands_on_the_same_voxels(tmp_path):
    # mask voxel (i, j, k) stored as m2[j, 4 - i, k]: axes 0/1 swapped and axis 0 flipped; its affine says so
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1, 2, 1] = 1
    mask[3, 0, 2] = 1
    stored = np.ascontiguousarray(mask[::-1].transpose(1, 0, 2))  # (5, 4, 3)
    # world(v') for stored voxel v' = (j, i', k) with i = 3 - i': A_mask = AFF @ P, P maps (j, i', k) -> (3 - i', j, k)
    p = np.array([[0, -1, 0, 3], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    img_path = save_nifti(tmp_path / "img.nii", np.zeros((4, 5, 3), np.float32), AFF)
    mask_path = save_nifti(tmp_path / "mask.nii", stored, AFF @ p)
    vol = load_volume(img_path, mask_path)
    assert np.array_equal(np.asarray(vol["mask"]), mask)  # the literal inverse of what was stored
    # a shift of 0.05 voxel is header round-off, not a misregistration
    mask_path = save_nifti(tmp_path / "mask2.nii", stored, AFF @ p + np.array([[0, 0, 0, 0.04]] + [[0] * 4] * 3))
    assert np.array_equal(np.asarray(load_volume(img_path, mask_path)["mask"]), mask)


def _set_affine(path: Path, value: float) -> None:
    img = nib.load(path)
    hdr = img.header.copy()
    aff = img.affine.copy()
    aff[0, 0] = value
    hdr.set_sform(aff, code=1)
    hdr.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), None, hdr), str(path))


@pytest.mark.parametrize("value, message", [(np.nan, "NaN or Inf"), (np.inf, "NaN or Inf"), (0.0, "singular")])
def test_nan_or_singular_affines_are_bad_input(tmp_path, value, message):
    root = _folder(tmp_path / "f")
    _set_affine(root / "images" / "b.nii", value)
    with pytest.raises(DataError, match=message) as info:
        open_dataset(root, "folder")
    assert "b.nii" in _one_line(info)
    with pytest.warns(RuntimeWarning):
        assert open_dataset(root, "folder", skip_bad=True).subjects == ["a"]
    # the mask's affine the same
    root2 = _folder(tmp_path / "g")
    _set_affine(root2 / "masks" / "b.nii", value)
    with pytest.raises(DataError, match=message):
        open_dataset(root2, "folder")


def _set_pixdim_raw(path: Path, i: int, value: float) -> None:
    """Write pixdim[i] straight into the header bytes (nibabel would 'fix' it on save)."""
    hdr = np.memmap(path, dtype=np.uint8, mode="r+", shape=(348,))
    hdr[76 + 4 * i : 80 + 4 * i] = np.frombuffer(np.float32(value).tobytes(), np.uint8)
    hdr.flush()
    del hdr


@pytest.mark.parametrize("i, value", [(1, 0.0), (2, -0.9), (1, np.nan), (2, np.inf)])
def test_zero_negative_or_nan_pixel_size_is_refused(tmp_path, i, value):
    root = _folder(tmp_path / "f")
    for sub in ("images", "masks"):  # also without orientation: the pixel size is still used for mm
        save_nifti(root / sub / "b.nii", np.full((4, 5, 2), 30.0 if sub == "images" else 0, np.float32), oriented=False)
    _set_pixdim_raw(root / "images" / "b.nii", i, value)
    with pytest.raises(DataError, match=r"pixel size \(pixdim\)") as info:
        open_dataset(root, "folder")
    assert "b.nii" in _one_line(info)
    p = _physionet(tmp_path / "p")
    _set_pixdim_raw(p / "ct_scans" / "002.nii", i, value)
    with pytest.raises(DataError, match="pixel size"):
        open_dataset(p, "physionet")


@pytest.mark.parametrize("spacing", [(0.0, 0.5), (-0.5, 0.5), (float("nan"), 0.5), None])
def test_dicom_pixel_spacing_must_be_given_and_positive(tmp_path, spacing):
    from xaiseg.data.rsna import read_dicom_slice

    path = write_dicom(tmp_path / "x.dcm", np.zeros((3, 4), np.int16), spacing=(0.5, 0.5))
    import pydicom

    ds = pydicom.dcmread(str(path))
    if spacing is None:
        del ds.PixelSpacing
    else:
        ds.PixelSpacing = [str(v) for v in spacing]
    ds.save_as(str(path))
    with pytest.raises(DataError, match="PixelSpacing") as info:
        read_dicom_slice(path)
    _one_line(info)


# ---- items of a data set passed in -----------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"image": np.array([[0.0, np.nan]])}, "1 NaN/Inf voxel"),
    ({"image": np.array([[0.0, np.inf], [-np.inf, 1]])}, "2 NaN/Inf voxel"),
    ({"spacing": (0.0, 1.0)}, "pixel spacing"),
    ({"spacing": (float("nan"), 1.0)}, "pixel spacing"),
    ({"spacing": None}, "pixel spacing"),
    ({"spacing": (1.0,)}, "pixel spacing"),
    ({"mask": np.zeros((3, 3))}, "mask of shape"),
    ({"mask": np.full((2, 2), np.nan)}, "NaN/Inf"),
    ({"image": np.zeros((2, 2, 3))}, "expected one 2-D slice"),
])
def test_check_item_reports_what_the_file_loaders_would(change, message):
    item = {"image": np.zeros((2, 2), np.float32), "spacing": (0.5, 0.5), "mask": np.zeros((2, 2), np.uint8)}
    check_item(item, "item 3")
    with pytest.raises(DataError, match=message) as info:
        check_item({**item, **change}, "item 3")
    assert _one_line(info).startswith("item 3")
