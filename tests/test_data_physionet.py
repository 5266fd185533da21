"""PhysioNet CT-ICH loader against tiny data sets written here with nibabel and csv."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests._data_builders import physionet_row, save_nifti, set_scaling, write_physionet_csv
from xaiseg.data import LABELS, open_dataset
from xaiseg.data.physionet import PhysioNetDataset
from xaiseg.errors import DataError

NX, NY = 6, 5  # voxel axes 0 and 1


def _values(nz: int, base: float) -> np.ndarray:
    """data[i, j, k] = base + 100 k + 10 j + i (+ a quarter, to see float HU survive)."""
    i, j, k = np.meshgrid(np.arange(NX), np.arange(NY), np.arange(nz), indexing="ij")
    return (base + 100 * k + 10 * j + i + 0.25).astype(np.float32)


@pytest.fixture
def physionet(tmp_path: Path) -> Path:
    root = tmp_path / "ct-ich"
    # patient 49: RAS affine (i -> patient's right, j -> anterior), float HU.
    # Its mask is stored flipped along axis 0, with an affine that says so.
    aff49 = np.diag([0.4, 0.5, 5.0, 1.0])
    save_nifti(root / "ct_scans" / "049.nii", _values(4, 0.0), aff49)
    m49 = np.zeros((NX, NY, 4), np.uint8)
    m49[2, 3, 1] = 255  # marker in image voxel (2, 3, 1)
    flip_i = np.array([[-1, 0, 0, NX - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    save_nifti(root / "masks" / "049.nii", m49[::-1].copy(), aff49 @ flip_i)
    # patient 50: unpadded .nii.gz name, LPS affine; mask stored with axes 0/1 swapped.
    aff50 = np.diag([-0.7, -0.7, 5.0, 1.0])
    save_nifti(root / "ct_scans" / "50.nii.gz", _values(4, 1000.0), aff50)
    m50 = np.zeros((NX, NY, 4), np.uint8)
    m50[4, 1, 2] = 255
    swap = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    save_nifti(root / "masks" / "50.nii.gz", m50.transpose(1, 0, 2).copy(), aff50 @ swap)
    # patient 51: int16 with scl_slope/scl_inter in the header; mask without orientation
    raw = (np.arange(NX * NY * 2).reshape(NX, NY, 2) * 3).astype(np.int16)
    save_nifti(root / "ct_scans" / "051.nii", raw, aff50)
    set_scaling(root / "ct_scans" / "051.nii", 0.5, -1000.0)
    m51 = np.zeros((NX, NY, 2), np.uint8)
    m51[0, 0, 0] = 1
    save_nifti(root / "masks" / "051.nii", m51, None, oriented=False)
    rows = [
        physionet_row(50, 3, Intraventricular=1),
        physionet_row(49, 2, Epidural=1, Subdural=1),
        physionet_row(51, 2),
        physionet_row(49, 1),
        physionet_row(50, 1),
        physionet_row(49, 4),
        physionet_row(51, 1, Intraparenchymal=1),
        physionet_row(49, 3),
        physionet_row(50, 2),
    ]  # shuffled on purpose; 50 slice 4 has no row
    write_physionet_csv(root / "hemorrhage_diagnosis_raw_ct.csv", rows)
    return root


def test_records_are_matched_by_patient_and_slice(physionet: Path) -> None:
    ds = open_dataset(physionet, "physionet")
    assert isinstance(ds, PhysioNetDataset)
    got = [(r.subject, r.slice, r.slice_index) for r in ds.records]
    assert got == [("049", s, s - 1) for s in (1, 2, 3, 4)] + [("050", s, s - 1) for s in (1, 2, 3)] + [
        ("051", 1, 0),
        ("051", 2, 1),
    ]
    lab = {(r.subject, r.slice): r.labels for r in ds.records}
    order = list(LABELS)
    expect = [0.0] * 6
    for name in ("epidural", "subdural", "any"):
        expect[order.index(name)] = 1.0
    assert lab[("049", 2)] == tuple(expect)
    assert lab[("050", 3)][order.index("intraventricular")] == 1.0 and lab[("050", 3)][-1] == 1.0
    assert lab[("049", 1)] == (0.0,) * 6
    assert ds.records[0].source.endswith("049.nii")


def test_pixels_orientation_and_mask_alignment(physionet: Path) -> None:
    ds = PhysioNetDataset(physionet, cache_volumes=1)
    items = {(it["subject"], it["slice"]): it for it in (ds[i] for i in range(len(ds)))}
    assert len(ds._cache) == 1  # never more volumes in memory than asked for
    # 049 is RAS: display row r <- j = NY-1-r, column c <- i = NX-1-c
    for k in range(4):
        img = items[("049", k + 1)]["image"].numpy()
        assert img.shape == (NY, NX) and img.dtype == np.float32
        for r in range(NY):
            for c in range(NX):
                assert img[r, c] == pytest.approx(100 * k + 10 * (NY - 1 - r) + (NX - 1 - c) + 0.25)
    it = items[("049", 2)]
    assert it["spacing"] == pytest.approx((0.5, 0.4))
    assert it["mask"].dtype.is_floating_point is False and int(it["mask"].sum()) == 1
    # the mask's marker (image voxel i=2, j=3) lands on the same pixel as in the image
    assert it["mask"][NY - 1 - 3, NX - 1 - 2] == 1
    assert int(items[("049", 1)]["mask"].sum()) == 0
    # 050 is LPS: display row r <- j = r, column c <- i = c; mask was stored transposed
    img = items[("050", 3)]["image"].numpy()
    assert img[1, 4] == pytest.approx(1000 + 200 + 10 * 1 + 4 + 0.25)
    assert items[("050", 3)]["mask"][1, 4] == 1 and int(items[("050", 3)]["mask"].sum()) == 1
    assert items[("050", 3)]["spacing"] == pytest.approx((0.7, 0.7))
    assert items[("050", 3)]["slice_index"] == 2
    # 051: HU = raw * 0.5 - 1000 from the header's scl_slope/scl_inter
    raw = (np.arange(NX * NY * 2).reshape(NX, NY, 2) * 3).astype(np.float64)
    img = items[("051", 2)]["image"].numpy()
    np.testing.assert_allclose(img, (raw[:, :, 1] * 0.5 - 1000.0).T)
    assert items[("051", 1)]["mask"][0, 0] == 1  # no orientation in the mask: voxel order


def test_brain_mask_folder_is_aligned(physionet: Path, tmp_path: Path) -> None:
    bdir = tmp_path / "brains"
    b = np.zeros((NX, NY, 4), np.uint8)
    b[1, 2, 0] = 1
    save_nifti(bdir / "049.nii", b, np.diag([0.4, 0.5, 5.0, 1.0]))
    save_nifti(bdir / "050.nii", np.zeros((NX, NY, 4), np.uint8), np.diag([-0.7, -0.7, 5.0, 1.0]))
    save_nifti(bdir / "051.nii", np.zeros((NX, NY, 2), np.uint8), np.diag([-0.7, -0.7, 5.0, 1.0]))
    ds = PhysioNetDataset(physionet, brain_dir=bdir)
    it = ds[0]
    assert it["brain"][NY - 1 - 2, NX - 1 - 1] == 1 and int(it["brain"].sum()) == 1


# ------------------------------------------------------------------------------------------
# bad input: one line, naming the file and the problem


def _one_patient(root: Path, vol: np.ndarray | None = None, mask: np.ndarray | None = None, rows=None) -> Path:
    vol = np.zeros((4, 4, 2), np.float32) if vol is None else vol
    mask = np.zeros(vol.shape, np.uint8) if mask is None else mask
    save_nifti(root / "ct_scans" / "001.nii", vol)
    save_nifti(root / "masks" / "001.nii", mask)
    write_physionet_csv(root / "hemorrhage_diagnosis_raw_ct.csv", rows or [physionet_row(1, 1), physionet_row(1, 2)])
    return root


def _error(root: Path, **kw) -> str:
    with pytest.raises(DataError) as ei:
        ds = PhysioNetDataset(root, **kw)
        for i in range(len(ds)):
            ds[i]
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def test_missing_column(tmp_path: Path) -> None:
    root = _one_patient(tmp_path)
    header = [h for h in
              ["PatientNumber", "SliceNumber", "Intraventricular", "Intraparenchymal", "Subarachnoid", "Epidural", "No_Hemorrhage"]]
    write_physionet_csv(root / "hemorrhage_diagnosis_raw_ct.csv", [physionet_row(1, 1)], header)
    msg = _error(root)
    assert "hemorrhage_diagnosis_raw_ct.csv" in msg and "Subdural" in msg


def test_missing_files(tmp_path: Path) -> None:
    root = _one_patient(tmp_path, rows=[physionet_row(1, 1), physionet_row(7, 1)])
    msg = _error(root)
    assert "007.nii" in msg and "not found" in msg
    (root / "hemorrhage_diagnosis_raw_ct.csv").unlink()
    assert "hemorrhage_diagnosis_raw_ct.csv" in _error(root)


def test_mask_shape_differs(tmp_path: Path) -> None:
    msg = _error(_one_patient(tmp_path, mask=np.zeros((4, 5, 2), np.uint8)))
    assert "masks/001.nii" in msg and "differs" in msg


def test_4d_and_empty_volumes(tmp_path: Path) -> None:
    msg = _error(_one_patient(tmp_path / "a", vol=np.zeros((4, 4, 2, 3), np.float32), mask=np.zeros((4, 4, 2), np.uint8)))
    assert "001.nii" in msg and "4-D" in msg
    msg = _error(_one_patient(tmp_path / "b", vol=np.zeros((4, 4, 0), np.float32), rows=[physionet_row(1, 1)]))
    assert "001.nii" in msg and "empty" in msg


def test_nan_voxels(tmp_path: Path) -> None:
    vol = np.zeros((4, 4, 2), np.float32)
    vol[1, 1, 1] = np.nan
    root = _one_patient(tmp_path, vol=vol)
    ds = PhysioNetDataset(root)
    ds[0]  # slice 1 is fine
    with pytest.raises(DataError, match=r"001\.nii slice 2: 1 NaN/Inf"):
        ds[1]


def test_csv_slice_that_does_not_exist(tmp_path: Path) -> None:
    msg = _error(_one_patient(tmp_path, rows=[physionet_row(1, 1), physionet_row(1, 9)]))
    assert "slice 9 does not exist" in msg and "001.nii has 2 slices" in msg


def test_unreadable_nifti(tmp_path: Path) -> None:
    root = _one_patient(tmp_path)
    (root / "ct_scans" / "001.nii").write_bytes(b"this is not a NIfTI file" * 20)
    msg = _error(root)
    assert "001.nii" in msg and "not a readable NIfTI" in msg


def test_skip_bad_counts_and_reports(tmp_path: Path) -> None:
    root = _one_patient(tmp_path, rows=[physionet_row(1, 1), physionet_row(2, 1), physionet_row(3, 1)])
    save_nifti(root / "ct_scans" / "002.nii", np.zeros((4, 4, 1), np.float32))
    save_nifti(root / "masks" / "002.nii", np.zeros((3, 4, 1), np.uint8))  # bad shape; 003 is missing
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = PhysioNetDataset(root, skip_bad=True)
    assert [r.subject for r in ds.records] == ["001"]
    assert len(ds.skipped) == 2
    assert any("skipped 2 bad item" in str(x.message) for x in w)


def test_records_need_no_pixels(physionet: Path, monkeypatch) -> None:
    import xaiseg.data.nifti as nifti

    def no_pixels(*a, **k):
        raise AssertionError("pixel data read while building the records")

    monkeypatch.setattr(nifti, "read_array", no_pixels)
    ds = PhysioNetDataset(physionet)
    assert len(ds.records) == 9 and len(ds._cache) == 0


def test_display_transform_inverts() -> None:
    from xaiseg.data.nifti import DisplayTransform

    vox = np.arange(12).reshape(3, 4)
    for t in (False, True):
        for fr in (False, True):
            for fc in (False, True):
                tf = DisplayTransform(t, fr, fc)
                disp = tf.apply(vox)
                assert disp.shape == ((3, 4) if t else (4, 3))
                np.testing.assert_array_equal(tf.invert(disp), vox)


def test_skip_bad_drops_the_subjects_of_bad_csv_rows(tmp_path: Path) -> None:
    import csv as _csv

    rows = [physionet_row(p, s) for p in (1, 2, 3) for s in (1, 2)] + [physionet_row(2, 1)]  # 002 slice 1 twice
    root = _one_patient(tmp_path, rows=rows)
    for p in (2, 3):
        save_nifti(root / "ct_scans" / f"00{p}.nii", np.zeros((4, 4, 2), np.float32))
        save_nifti(root / "masks" / f"00{p}.nii", np.zeros((4, 4, 2), np.uint8))
    path = root / "hemorrhage_diagnosis_raw_ct.csv"
    lines = list(_csv.reader(open(path)))
    lines[6][lines[0].index("Epidural")] = "yes"  # line 7: patient 3 slice 2, not a number
    lines.append(["x"] + lines[1][1:])  # a row whose patient cannot be read
    with open(path, "w", newline="") as fh:
        _csv.writer(fh).writerows(lines)
    assert "line 7: column Epidural is 'yes', not a number" in _error(root)  # the first bad row
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = PhysioNetDataset(root, skip_bad=True)
    # 002 (duplicate) and 003 (bad cell) go whole; the unreadable row goes alone; 001 stays
    assert sorted({r.subject for r in ds.records}) == ["001"] and len(ds.records) == 2
    assert len(ds.skipped) == 3 and any("listed twice" in m for m in ds.skipped)
    assert any("'yes', not a number" in m for m in ds.skipped)


def test_a_csv_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    root = _one_patient(tmp_path)
    path = root / "hemorrhage_diagnosis_raw_ct.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Excel saves "CSV UTF-8"
    assert [r.slice for r in PhysioNetDataset(root).records] == [1, 2]


def test_two_files_for_one_patient_are_an_error_not_a_guess(tmp_path: Path) -> None:
    root = _one_patient(tmp_path)
    save_nifti(root / "ct_scans" / "1.nii.gz", np.ones((4, 4, 2), np.float32))
    msg = _error(root)
    assert "patient 1 has 2 files (001.nii, 1.nii.gz)" in msg
