"""Smoke test on real head CT: the 36 PhysioNet CT-ICH slices in ../shared/data (CC BY 4.0).

The sample is JPEG in the brain window (grey = 255·(HU+20)/120, clipped), so HU outside
−20…100 are lost and the bone window carries nothing; it is no benchmark. The test checks that
the whole pipeline — NIfTI folder loader, preprocessing, the shipped classifier, HGI-SAM, grid
thresholds over subject-wise folds, every output file — runs on real anatomy and real lesions.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct-ich-v1-sample"


def _write_folder_dataset(out: Path, per_patient: int = 3) -> int:
    """One NIfTI volume per patient (its first slices, stacked), HU from the brain window."""
    rows = list(csv.DictReader(open(SAMPLE / "slices.csv")))
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_patient[r["patient"]].append(r)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    n = 0
    for patient, items in sorted(by_patient.items()):
        items = sorted(items, key=lambda r: int(r["slice"]))[:per_patient]
        grey = np.stack([np.asarray(Image.open(SAMPLE / r["image"]).convert("L"), np.float32) for r in items], -1)
        rgb = np.stack([np.asarray(Image.open(SAMPLE / r["mask"]).convert("RGB")) for r in items], -1)
        hu = grey * 120.0 / 255.0 - 20.0
        mask = (rgb[:, :, 0] > 100).astype(np.uint8)  # (210, 80, 0) on black
        affine = np.diag([0.45, 0.45, 5.0, 1.0])
        nib.save(nib.Nifti1Image(hu.astype(np.float32), affine), out / "images" / f"{patient}.nii.gz")
        nib.save(nib.Nifti1Image(mask, affine), out / "masks" / f"{patient}.nii.gz")
        n += len(items)
    return n


@pytest.mark.skipif(not SAMPLE.exists(), reason="the shared real-CT sample is not beside this checkout")
def test_pipeline_runs_on_real_ct(tmp_path):
    import xaiseg.benchmark
    from xaiseg.training import default_checkpoint

    if not (default_checkpoint() / "model.safetensors").exists():
        pytest.fail("the shipped checkpoint is missing from the package")
    n = _write_folder_dataset(tmp_path / "data")
    result = xaiseg.benchmark.run(
        data=tmp_path / "data", layout="folder", checkpoint=default_checkpoint(),
        methods="hgi-sam,centre-prior", threshold="grid", folds=5, brain_mask="none",
        out=tmp_path / "out", device="cpu", batch_size=8,
    )
    rows = list(csv.DictReader(open(result.out / "slices.csv")))
    assert {r["method"] for r in rows} == {"hgi-sam", "centre-prior"}
    assert len(rows) == 2 * n
    summary = json.loads((result.out / "summary.json").read_text())
    text = json.dumps(summary)
    assert "hgi-sam" in text and "dice" in text.lower()
    for r in rows:
        d = float(r["dice"])
        assert 0.0 <= d <= 1.0
