"""benchmarks/phantom_breakdown.py: every figure recomputed here from the written files (nibabel,
the CSV, phantom.json), the checkpoint run slice by slice through ``LoadedModel.prepare``, and
sklearn's AUC."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from xaiseg import load_model
from xaiseg.data.phantom_writer import write_phantom
from xaiseg.training import TrainConfig, train

from .benchmark_helpers import benchmark_script

TINY = {"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]}
CSV_SUBTYPES = {"epidural": "Epidural", "intraparenchymal": "Intraparenchymal", "intraventricular": "Intraventricular",
                "subarachnoid": "Subarachnoid", "subdural": "Subdural"}


def _script():
    return benchmark_script("phantom_breakdown")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("breakdown")
    data = write_phantom(tmp / "ph", subjects=6, slices_per_subject=8, size=48, prevalence=0.7, seed=3, progress=False)
    train(TrainConfig(out=str(tmp / "ck"), data="phantom", model="tiny", model_kwargs=TINY, epochs=1, steps_per_epoch=2,
                      batch_size=4, val_size=8, device="cpu", progress=False, threads=1))
    mod = _script()
    return mod, data, tmp / "ck", mod.score(str(tmp / "ck"), str(data), device="cpu")


def _truth(data: Path) -> list[dict]:
    """Label, subtypes, lesion area (mm²), 8-bit export and the volume slice of every written slice."""
    meta = json.loads((data / "phantom.json").read_text())
    subjects = {int(s["PatientNumber"]): s for s in meta["subject_list"]}
    with open(data / "hemorrhage_diagnosis_raw_ct.csv") as fh:
        table = list(csv.DictReader(fh))
    out = []
    for row in table:
        sid, k = int(row["PatientNumber"]), int(row["SliceNumber"]) - 1
        s = subjects[sid]
        mask = np.asarray(nib.load(data / "masks" / s["file"]).dataobj)[..., k]
        hu = np.asarray(nib.load(data / "ct_scans" / s["file"]).dataobj, dtype=np.float32)[..., k]
        out.append({"subject": sid, "slice_index": k, "positive": row["No_Hemorrhage"] == "0",
                    "subtypes": {t for t, c in CSV_SUBTYPES.items() if row[c] == "1"},
                    "area_mm2": float((mask > 0).sum()) * s["pixel_mm"] ** 2,
                    "window8": s["acquisition"]["window8"] is not None, "hu": hu})
    return out


def test_rows_match_the_written_files_and_the_checkpoint(scored):
    _, data, ck, rows = scored
    truth = {(t["subject"], t["slice_index"]): t for t in _truth(data)}
    assert len(rows) == len(truth) == 48
    loaded = load_model(ck, device="cpu")
    for r in rows:
        t = truth[(r["subject"], r["slice_index"])]
        assert r["positive"] == t["positive"] and set(r["subtypes"]) == t["subtypes"] and r["window8"] == t["window8"]
        assert r["area_mm2"] == pytest.approx(t["area_mm2"], rel=1e-6)
        assert r["level"] == pytest.approx(t["slice_index"] / 7)  # 0 at the lowest slice, 1 at the top one
        # the volume is stored (columns, rows, slices): the slice image is its transpose
        with torch.no_grad():
            x, _ = loaded.prepare(t["hu"].T)
            p = float(loaded.detection_probability(loaded.model(x))[0])
        assert r["p"] == pytest.approx(p, abs=1e-5)


def test_every_auc_is_sklearns_on_its_group(scored):
    mod, data, _, rows = scored
    f = mod.breakdown(rows, top=3)
    y, p = np.array([r["positive"] for r in rows]), np.array([r["p"] for r in rows])
    assert 0 < y.sum() < len(y)
    assert f["all"]["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    w8 = np.array([r["window8"] for r in rows])
    for key, sel in (("window8", w8), ("other", ~w8)):
        both = sel.any() and 0 < y[sel].sum() < sel.sum()
        assert (f[key]["auc"] == pytest.approx(roc_auc_score(y[sel], p[sel]), abs=1e-12)) if both else np.isnan(f[key]["auc"])
    subtypes = [set(r["subtypes"]) for r in rows]
    area = np.array([r["area_mm2"] for r in rows])
    level = np.array([r["slice_index"] for r in rows]) / 7
    groups = {("by_subtype", t): np.array([t in s for s in subtypes]) for t in CSV_SUBTYPES}
    for lo, hi in zip(mod.AREA_BANDS_MM2, mod.AREA_BANDS_MM2[1:]):
        groups[("by_area_mm2", f"{lo:g}-{hi:g}")] = (area >= lo) & (area < hi)
    for lo, hi in zip(mod.LEVEL_BANDS, mod.LEVEL_BANDS[1:]):
        groups[("by_level", f"{lo:.2f}-{min(hi, 1.0):.2f}")] = (level >= lo) & (level < hi)
    seen = 0
    for (key, name), sel in groups.items():
        g, pos = f[key][name], y & sel
        assert g["positives"] == int(pos.sum())
        keep = pos | ~y
        if pos.any():
            assert g["auc"] == pytest.approx(roc_auc_score(y[keep], p[keep]), abs=1e-12)
            seen += 1
        else:
            assert np.isnan(g["auc"])
    assert seen >= 4
    assert sum(f["by_area_mm2"][k]["positives"] for k in f["by_area_mm2"]) == y.sum()
    top = f["top_negatives"]
    assert [r["p"] for r in top] == sorted(p[~y], reverse=True)[:3] and not any(r["positive"] for r in top)


def test_bad_input_is_one_line(scored, tmp_path, monkeypatch):
    mod, data, _, _ = scored
    for args, words in (([str(tmp_path), str(tmp_path)], "holds no phantom.json"),
                        ([str(tmp_path / "none"), str(data)], "none")):
        monkeypatch.setattr("sys.argv", ["phantom_breakdown.py", "--checkpoint", args[0], "--data", args[1]])
        with pytest.raises(SystemExit) as e:
            mod.main()
        assert words in str(e.value) and "\n" not in str(e.value)


def test_json_is_strict(scored, tmp_path, monkeypatch):
    mod, data, ck, _ = scored
    out = tmp_path / "f.json"
    monkeypatch.setattr("sys.argv", ["phantom_breakdown.py", "--checkpoint", str(ck), "--data", str(data), "--json", str(out)])
    mod.main()
    figures = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert figures["all"]["slices"] == 48
