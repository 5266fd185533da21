"""The synthetic head-CT phantom: HU realism, lesion shape and place, label/mask agreement,
determinism, size independence, and the PhysioNet layout it writes (read back with nibabel)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from xaiseg.data import LABELS, SUBTYPES
from xaiseg.data.phantom import FOV_MM, render, render_slice, sample_head, sample_lesion
from xaiseg.data.phantom_writer import write_phantom
from xaiseg.errors import ConfigError


def _slice(seed: int, size: int = 128, z: float = 0.55, subtypes=(), scale: float = 1.0):
    return render_slice(np.random.default_rng(seed), size=size, z=z, subtypes=subtypes, lesion_scale=scale)


def test_types_and_tissue_values() -> None:
    s = _slice(0, size=256, z=0.55)
    assert s.hu.dtype == np.float32 and s.hu.shape == (256, 256)
    assert s.mask.dtype == np.uint8 and s.brain.dtype == np.uint8 and s.labels.dtype == np.float32
    assert s.spacing == pytest.approx((FOV_MM / 256, FOV_MM / 256))
    assert s.labels.tolist() == [0.0] * 6 and s.mask.sum() == 0
    brain = s.brain > 0
    assert abs(s.hu[:8, :8].mean() + 1000) < 5  # air in the corner
    outside = ~ndi.binary_dilation(brain, iterations=2)
    skull = outside & (ndi.median_filter(s.hu, 3) > 700)
    # a bone ring encloses the brain: every ray from the centre meets bone > 700 HU
    rr, cc = np.nonzero(brain)
    cy, cx = int(rr.mean()), int(cc.mean())
    assert skull[cy, cx:].any() and skull[cy, :cx].any() and skull[cy:, cx].any() and skull[:cy, cx].any()
    smooth = ndi.uniform_filter(s.hu, 3)
    inner = ndi.binary_erosion(brain, iterations=4)
    parenchyma = smooth[inner]
    assert 20 < np.median(parenchyma) < 40
    assert (smooth[inner] < 15).mean() > 0.01  # CSF: ventricles and sulci
    # grey/white contrast: the cortical ribbon is brighter than the deep white matter
    depth = ndi.distance_transform_edt(brain) * s.spacing[0]
    deep = smooth[(depth > 25) & (smooth > 15)]
    cortex = smooth[(depth > 1) & (depth < 3) & (smooth > 15)]
    assert 4 < np.median(cortex) - np.median(deep) < 15


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_each_subtype_has_its_shape_and_place(subtype: str) -> None:
    found = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        head = sample_head(rng)
        les = sample_lesion(rng, subtype, head, zc=0.6 + rng.uniform(-0.3, 0.3) * 0.05)
        s = render(head, [les], 0.6, rng, size=256)
        # acute (50-90 HU) or subacute (38-52 HU) blood
        assert 38 <= les.blood_hu <= 90
        m, brain = s.mask > 0, s.brain > 0
        assert (s.labels[-1] > 0) == m.any() and s.labels[SUBTYPES.index(subtype)] == float(m.any())
        assert s.labels[[i for i, n in enumerate(SUBTYPES) if n != subtype]].sum() == 0
        if m.sum() < 30:
            continue
        found += 1
        assert not (m & ~brain).any()
        core = ndi.binary_erosion(m, iterations=1)
        if subtype == "subarachnoid":  # lines about a pixel wide: partial volume with CSF
            blood = np.percentile(s.hu[m & ndi.binary_erosion(brain, iterations=2)], 75)
        else:
            blood = np.median(s.hu[core]) if core.any() else np.median(s.hu[m])
        assert abs(blood - les.blood_hu) < 10, (blood, les.blood_hu)
        px = s.spacing[0]
        depth = ndi.distance_transform_edt(brain) * px  # mm from the inner table
        thick = ndi.distance_transform_edt(m).max() * px  # half the lesion's largest width
        if subtype in ("epidural", "subdural"):
            assert depth[m].min() < 1.5 * px  # against the inner table
        if subtype == "subdural":
            lab, n = ndi.label(m)
            extent = max(np.ptp(np.nonzero(lab == 1 + np.argmax(np.bincount(lab.ravel())[1:]))[k]) for k in (0, 1)) * px
            assert extent > 3 * 2 * thick  # long and thin: a crescent
        if subtype == "intraparenchymal":
            assert depth[m].min() > 1.0  # inside the parenchyma, off the skull
            # the oedema rim is darker than the parenchyma farther out
            ring = ndi.binary_dilation(m, iterations=3) & ~ndi.binary_dilation(m, iterations=1)
            far = ndi.binary_dilation(m, iterations=12) & ~ndi.binary_dilation(m, iterations=8) & brain
            assert np.median(s.hu[ring]) < np.median(s.hu[far])
        if subtype == "intraventricular":
            assert depth[m].min() > 15  # deep: in the ventricles
        if subtype == "subarachnoid":
            # thin lines in sulci: nearly every pixel lies within 2.5 mm of the lesion's edge
            assert np.percentile(ndi.distance_transform_edt(m)[m], 90) * px < 2.5
            assert np.percentile(depth[m], 50) < 20  # near the surface
    assert found >= 3, f"{subtype}: only {found} of 12 slices had a visible lesion"


def test_labels_agree_with_mask_at_small_sizes() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        sts = tuple(rng.choice(SUBTYPES, size=int(rng.integers(0, 3)), replace=False))
        s = render_slice(rng, size=64, z=float(rng.uniform(0.1, 0.9)), subtypes=sts, lesion_scale=float(rng.uniform(1, 4)))
        assert s.labels[-1] == float(s.mask.any())
        assert s.labels[-1] == s.labels[:-1].max()
        assert set(np.flatnonzero(s.labels[:-1])) <= {SUBTYPES.index(t) for t in sts}


def test_determinism_scale_and_size_independence() -> None:
    a, b = _slice(7, subtypes=("subdural",)), _slice(7, subtypes=("subdural",))
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.hu, _slice(8, subtypes=("subdural",)).hu)
    small = _slice(3, subtypes=("intraparenchymal",), scale=1.0).mask.sum()
    big = _slice(3, subtypes=("intraparenchymal",), scale=3.0).mask.sum()
    assert big > 4 * small > 0
    # the same head and lesion at 128 and 512: same areas in mm² (anatomy is in mm)
    rng = np.random.default_rng(11)
    head = sample_head(rng)
    les = sample_lesion(rng, "epidural", head, zc=0.6)
    areas = []
    for size in (128, 512):
        s = render(head, [les], 0.6, np.random.default_rng(0), size=size)
        mm2 = s.spacing[0] * s.spacing[1]
        areas.append((s.brain.sum() * mm2, s.mask.sum() * mm2))
    assert areas[0][0] == pytest.approx(areas[1][0], rel=0.02)
    assert areas[0][1] == pytest.approx(areas[1][1], rel=0.15)


def _longest_run(slices: set[int]) -> int:
    best = 0
    for k in slices:
        if k - 1 not in slices:
            n = 1
            while k + n in slices:
                n += 1
            best = max(best, n)
    return best


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_write_phantom_layout_csv_and_determinism(tmp_path: Path) -> None:
    out = write_phantom(tmp_path / "ph", subjects=4, slices_per_subject=32, size=40, prevalence=0.5, seed=3, progress=False)
    rows = _read_csv(out / "hemorrhage_diagnosis_raw_ct.csv")
    assert list(rows[0]) == ["PatientNumber", "SliceNumber", "Intraventricular", "Intraparenchymal", "Subarachnoid",
                             "Epidural", "Subdural", "No_Hemorrhage", "Fracture_Yes_No"]
    assert len(rows) == 128
    meta = json.loads((out / "phantom.json").read_text())
    positive_subjects = set()
    for p in range(1, 5):
        ct = nib.load(str(out / "ct_scans" / f"{p:03d}.nii"))
        mask = np.asanyarray(nib.load(str(out / "masks" / f"{p:03d}.nii")).dataobj)
        brain = np.asanyarray(nib.load(str(out / "brain_masks" / f"{p:03d}.nii")).dataobj)
        assert ct.shape == (40, 40, 32) and ct.get_data_dtype() == np.int16
        assert nib.aff2axcodes(ct.affine) == ("L", "P", "S")
        px = meta["subject_list"][p - 1]["pixel_mm"]  # random acquisition: the subject's field of view
        assert 200 / 40 <= px <= 290 / 40 or px == pytest.approx(FOV_MM / 40)
        assert ct.header.get_zooms() == pytest.approx((px, px, 5.0))
        assert set(np.unique(mask)) <= {0, 255} and not (mask & ~brain).any()
        for k in range(32):
            row = next(r for r in rows if int(r["PatientNumber"]) == p and int(r["SliceNumber"]) == k + 1)
            has = bool(mask[:, :, k].any())
            assert row["No_Hemorrhage"] == str(int(not has))
            assert max(int(row[c]) for c in ("Intraventricular", "Intraparenchymal", "Subarachnoid", "Epidural", "Subdural")) == int(has)
            if has:
                positive_subjects.add(p)
    # lesions are 3-D: runs of consecutive positive slices (5 mm apart)
    runs = []
    for p in positive_subjects:
        pos = {int(r["SliceNumber"]) for r in rows if int(r["PatientNumber"]) == p and r["No_Hemorrhage"] == "0"}
        runs.append(_longest_run(pos))
    assert max(runs) >= 3
    assert 1 <= len(positive_subjects) <= 2  # round(0.5 * 4) subjects carry lesions
    again = write_phantom(tmp_path / "ph2", subjects=4, slices_per_subject=32, size=40, prevalence=0.5, seed=3, progress=False)
    for d in ("ct_scans", "masks"):
        assert (out / d / "002.nii").read_bytes() == (again / d / "002.nii").read_bytes()
    assert (out / "hemorrhage_diagnosis_raw_ct.csv").read_text() == (again / "hemorrhage_diagnosis_raw_ct.csv").read_text()


def test_phantom_reads_back_through_the_loader(tmp_path: Path) -> None:
    from xaiseg.data import open_dataset

    out = write_phantom(tmp_path / "ph", subjects=2, slices_per_subject=6, size=40, prevalence=1.0, seed=1, progress=False)
    ds = open_dataset(out, "physionet")
    assert len(ds) == 12 and "brain" in ds[0]
    raw = np.asanyarray(nib.load(str(out / "ct_scans" / "001.nii")).dataobj)
    for i in range(6):
        it = ds[i]
        # LPS voxel axes: the displayed slice is the voxel slice transposed
        assert np.array_equal(it["image"].numpy(), raw[:, :, i].T.astype(np.float32))
        assert (it["labels"][-1] > 0) == bool(it["mask"].any())
        assert [float(v) for v in it["labels"]] == list(ds.records[i].labels)
    assert len(LABELS) == len(ds.records[0].labels)


def test_write_phantom_refuses_and_cleans_up(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        write_phantom(out, subjects=1, slices_per_subject=2, size=32, progress=False)
    # --overwrite never deletes a folder this command did not write
    with pytest.raises(ConfigError, match="not a phantom written by"):
        write_phantom(out, subjects=1, slices_per_subject=2, size=32, progress=False, overwrite=True)
    assert (out / "keep.txt").read_text() == "x"
    (out / "keep.txt").unlink()
    write_phantom(out, subjects=1, slices_per_subject=2, size=32, progress=False)
    write_phantom(out, subjects=1, slices_per_subject=3, size=32, progress=False, overwrite=True)
    assert (out / "ct_scans" / "001.nii").exists()
    with pytest.raises(ConfigError, match="is a file"):
        write_phantom(out / "phantom.json", subjects=1, slices_per_subject=2, size=32, progress=False)
    with pytest.raises(ConfigError, match="which is a file"):
        write_phantom(out / "phantom.json" / "sub", subjects=1, slices_per_subject=2, size=32, progress=False)
    with pytest.raises(ConfigError, match="--seed must be >= 0"):
        write_phantom(tmp_path / "neg", subjects=1, slices_per_subject=2, size=32, progress=False, seed=-1)
    assert not (tmp_path / "neg").exists()

    import xaiseg.data.phantom_writer as pw

    calls = {"n": 0}
    real = pw.render

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr(pw, "render", failing)
    with pytest.raises(RuntimeError):
        write_phantom(tmp_path / "new", subjects=2, slices_per_subject=2, size=32, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # nothing half-written
