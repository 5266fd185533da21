"""RSNA 2019 loader against tiny DICOM files written here with pydicom."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests._data_builders import write_dicom
from xaiseg.data import LABELS, open_dataset
from xaiseg.data.rsna import RSNADataset
from xaiseg.errors import DataError

SUB = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]


def _csv(path: Path, labels: dict[str, dict[str, int]]) -> None:
    lines = ["ID,Label"]
    for image_id, lab in labels.items():
        for name in SUB:  # RSNA's own row order differs from LABELS order on purpose below
            if name in lab:
                lines.append(f"{image_id}_{name},{lab[name]}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def rsna(tmp_path: Path) -> Path:
    root = tmp_path / "rsna"
    img = root / "stage_2_train"
    stored = np.arange(12, dtype=np.int16).reshape(3, 4) * 100
    write_dicom(img / "ID_aaa.dcm", stored, slope=1.0, intercept=-1024.0, window=(40, 80), spacing=(0.45, 0.5), patient="P1")
    write_dicom(img / "ID_bbb.dcm", stored, slope=2.0, intercept=-1000.0, window=None, patient="P1")
    # column direction cosine pointing to the patient's right: the loader flips columns back
    write_dicom(img / "ID_ccc.dcm", stored, orientation=(-1, 0, 0, 0, 1, 0), patient="P2")
    labels = {
        "ID_aaa": {n: 0 for n in SUB},
        "ID_bbb": {**{n: 0 for n in SUB}, "subdural": 1, "any": 1},
        "ID_ccc": {**{n: 0 for n in SUB}, "intraventricular": 1, "any": 1},
    }
    _csv(root / "stage_2_train.csv", labels)
    return root


def test_hu_labels_and_window(rsna: Path) -> None:
    ds = open_dataset(rsna, "rsna")
    assert isinstance(ds, RSNADataset) and not ds.has_masks
    assert [Path(r.source).name for r in ds.records] == ["ID_aaa.dcm", "ID_bbb.dcm", "ID_ccc.dcm"]
    stored = np.arange(12, dtype=np.float64).reshape(3, 4) * 100
    a, b, c = ds[0], ds[1], ds[2]
    np.testing.assert_allclose(a["image"].numpy(), stored - 1024.0)
    np.testing.assert_allclose(b["image"].numpy(), stored * 2.0 - 1000.0)
    np.testing.assert_allclose(c["image"].numpy(), (stored - 1024.0)[:, ::-1])
    assert a["window"] == (40.0, 80.0) and "window" not in b
    assert a["spacing"] == pytest.approx((0.45, 0.5))
    assert "mask" not in a
    sub = list(LABELS).index("subdural")
    assert b["labels"][sub] == 1 and b["labels"][-1] == 1 and float(b["labels"][:sub].sum()) == 0
    assert c["labels"][list(LABELS).index("intraventricular")] == 1
    assert a["subject"] == "ID_aaa" and a["slice"] == 1 and a["slice_index"] == 0


def test_file_list_and_subjects(rsna: Path, tmp_path: Path) -> None:
    (rsna / "stage_2_train" / "ID_zzz.dcm").write_bytes(b"not listed, never opened")
    ds = RSNADataset(rsna, files=["ID_ccc", "stage_2_train/ID_aaa.dcm"], subjects="header")
    assert [r.subject for r in ds.records] == ["P2", "P1"]
    split = tmp_path / "split.csv"
    split.write_text("ID,fold\nID_bbb,0\n")
    meta = tmp_path / "meta.csv"
    meta.write_text("SOPInstanceUID,PatientID\nID_bbb,PX\n")
    ds = RSNADataset(rsna, files=split, subjects=meta)
    assert [(Path(r.source).name, r.subject) for r in ds.records] == [("ID_bbb.dcm", "PX")]


def test_image_without_row_is_an_error(rsna: Path) -> None:
    write_dicom(rsna / "stage_2_train" / "ID_ddd.dcm", np.zeros((3, 4), np.int16))
    with pytest.raises(DataError, match=r"ID_ddd\.dcm: no row in stage_2_train\.csv"):
        RSNADataset(rsna)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = RSNADataset(rsna, skip_bad=True)
    assert len(ds) == 3 and len(ds.skipped) == 1


def test_unreadable_dicom(rsna: Path) -> None:
    (rsna / "stage_2_train" / "ID_bbb.dcm").write_bytes(b"garbage" * 50)
    ds = RSNADataset(rsna)
    with pytest.raises(DataError, match=r"ID_bbb\.dcm: unreadable DICOM"):
        ds[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = RSNADataset(rsna, skip_bad=True)
        dropped = ds.validate(progress=False)
    assert len(dropped) == 1 and [Path(r.source).name for r in ds.records] == ["ID_aaa.dcm", "ID_ccc.dcm"]


def test_bad_csv(rsna: Path) -> None:
    (rsna / "stage_2_train.csv").write_text("image,label\n")
    with pytest.raises(DataError, match="expected the columns ID,Label"):
        RSNADataset(rsna)


def test_skip_bad_drops_images_with_bad_label_rows(rsna: Path) -> None:
    path = rsna / "stage_2_train.csv"
    path.write_text(path.read_text().replace("ID_bbb_subdural,1", "ID_bbb_subdural,maybe") + "ID_ccc_any,0\n")
    with pytest.raises(DataError, match="label 'maybe' is not 0 or 1"):
        RSNADataset(rsna)
    with pytest.warns(RuntimeWarning, match="skipped 2 bad item"):
        ds = RSNADataset(rsna, skip_bad=True)
    assert [Path(r.source).stem for r in ds.records] == ["ID_aaa"]  # bbb: bad cell; ccc: conflicting rows
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.warns(RuntimeWarning):
        assert len(RSNADataset(rsna, skip_bad=True).records) == 1
