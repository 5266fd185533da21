"""Generic NIfTI folder loader against tiny folders written here with nibabel and csv."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests._data_builders import save_nifti
from xaiseg.data import LABELS, open_dataset
from xaiseg.data.folder import FolderDataset
from xaiseg.errors import DataError

NAN = float("nan")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "nifti"
    # "a": 3 slices, LPS affine (display = data[:, :, k].T), lesion on slice 2 only
    a = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) - 30.5
    ma = np.zeros((4, 5, 3), np.uint8)
    ma[1, 2, 1] = 1
    aff = np.diag([-0.8, -0.9, 3.0, 1.0])
    save_nifti(root / "images" / "a.nii.gz", a, aff)
    save_nifti(root / "masks" / "a.nii", ma, aff)
    # "b": one 2-D slice, no lesion
    save_nifti(root / "images" / "b.nii", np.full((4, 5), 40.0, np.float32), aff)
    save_nifti(root / "masks" / "b.nii.gz", np.zeros((4, 5), np.uint8), aff)
    return root


def test_names_matched_and_labels_from_masks(folder: Path) -> None:
    ds = open_dataset(folder, "auto")
    assert isinstance(ds, FolderDataset)
    assert [(r.subject, r.slice) for r in ds.records] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    anys = [r.labels[-1] for r in ds.records]
    assert anys == [0.0, 1.0, 0.0, 0.0]
    assert all(np.isnan(r.labels[:5]).all() for r in ds.records)  # subtypes unknown
    it = ds[1]
    a = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) - 30.5
    np.testing.assert_array_equal(it["image"].numpy(), a[:, :, 1].T)
    assert it["mask"][2, 1] == 1 and int(it["mask"].sum()) == 1
    assert it["spacing"] == pytest.approx((0.9, 0.8))
    b = ds[3]
    assert tuple(b["image"].shape) == (5, 4) and float(b["image"].mean()) == 40.0


def test_labels_csv_overrides(folder: Path) -> None:
    (folder / "labels.csv").write_text("name,any,subdural,slice\na.nii.gz,1,1,\nb,0,0,1\n")
    ds = FolderDataset(folder)
    sub = list(LABELS).index("subdural")
    for r in ds.records:
        if r.subject == "a":
            assert r.labels[-1] == 1.0 and r.labels[sub] == 1.0 and np.isnan(r.labels[0])
        else:
            assert r.labels[-1] == 0.0 and r.labels[sub] == 0.0


def test_bad_folder_inputs(folder: Path, tmp_path: Path) -> None:
    (folder / "labels.csv").write_text("name,any\nzzz,1\n")
    with pytest.raises(DataError, match=r"labels\.csv: line 2: no image named 'zzz'"):
        FolderDataset(folder)
    (folder / "labels.csv").write_text("name,subdural\na,1\n")
    with pytest.raises(DataError, match=r"labels\.csv: missing column\(s\) any"):
        FolderDataset(folder)
    (folder / "labels.csv").unlink()
    (folder / "masks" / "b.nii.gz").unlink()
    with pytest.raises(DataError, match=r"images/b\.nii: no mask named b"):
        FolderDataset(folder)
    with pytest.warns(RuntimeWarning, match="skipped 1 bad item"):
        ds = FolderDataset(folder, skip_bad=True)
    assert {r.subject for r in ds.records} == {"a"} and len(ds.skipped) == 1
    with pytest.raises(DataError, match="images: folder not found"):
        FolderDataset(tmp_path / "nowhere")


def test_open_dataset_layouts(folder: Path, tmp_path: Path) -> None:
    from xaiseg.data import detect_layout
    from xaiseg.errors import ConfigError

    assert detect_layout(folder) == "folder"
    with pytest.raises(ConfigError, match="unknown data layout 'dicom'"):
        open_dataset(folder, "dicom")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the layout"):
        open_dataset(tmp_path / "empty")


def test_skip_bad_drops_images_with_bad_label_rows(folder: Path) -> None:
    (folder / "labels.csv").write_text("name,any,slice\na,1,1\na,0,1.5\nb,0,\nzzz,1,\n")
    with pytest.raises(DataError, match=r"line 3: slice is '1.5', not an integer"):
        FolderDataset(folder)
    with pytest.warns(RuntimeWarning, match="skipped 2 bad item"):
        ds = FolderDataset(folder, skip_bad=True)
    # "a" goes whole (not relabelled from its masks), "zzz" names no image; "b" stays
    assert {r.subject for r in ds.records} == {"b"} and len(ds.skipped) == 2
    (folder / "labels.csv").write_bytes(b"\xef\xbb\xbfname,any\na,1\nb,0\n")  # Excel's BOM
    assert [r.labels[-1] for r in FolderDataset(folder).records] == [1.0, 1.0, 1.0, 0.0]
