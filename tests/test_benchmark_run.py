"""The benchmark end to end on a tiny in-memory data set and a tiny untrained Swin: every
output file and its columns, scores checked against an independent recomputation, grid
thresholds against a brute-force search, and crash + resume equal to an uninterrupted run."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xaiseg.benchmark import run
from xaiseg.errors import ConfigError

from .benchmark_helpers import make_assets

METHODS = ["hgi-sam", "swin-sam"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory, "assets")


def _run(assets, out, **kw):
    data, ckpt = assets
    args = dict(data=data, checkpoint=ckpt, methods=METHODS, threshold="grid", folds=3, batch_size=8,
                out=out, figures=False, progress=False)
    args.update(kw)
    return run(**args)


def _dataset(assets):
    from xaiseg.data import open_dataset

    return open_dataset(assets[0], "physionet")


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def full(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    return _run(assets, out, figures=True, keep_cache=True, montage_slices=3, save_maps=True)


def test_every_output_file_and_its_columns(full):
    out = full.out
    rows = _csv(out / "slices.csv")
    assert len(rows) == len(METHODS) * 30
    for col in ("method", "subject", "slice", "fold", "role", "any", "prob", "threshold", "dice", "iou", "hd95",
                "auroc", "relevance_mass", "pointing_game", "pred_area_px", "pred_area_mm2", "subdural", "epidural"):
        assert col in rows[0], col
    summary = _csv(out / "summary.csv")
    assert [r["method"] for r in summary] == full.summary["ranking"] and len(summary) == 2
    for col in ("dice_mean", "dice_std", "dice_sem", "iou_mean", "hd95_mean", "auroc_mean", "relevance_mass_mean",
                "pointing_game_mean", "fold_thresholds", "negative_pred_area_mm2_mean", "detection_auc",
                "detection_sensitivity", "detection_specificity", "detection_precision", "detection_f1", "detection_accuracy"):
        assert col in summary[0], col
    assert len(summary[0]["fold_thresholds"].split(";")) == 3
    rows0 = [r for r in rows if r["method"] == METHODS[0] and r["role"] == "positive"]
    assert {r["subtype"] for r in _csv(out / "summary_by_subtype.csv")} == {
        st for st in ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
        if any(r[st] == "1" for r in rows0)}
    assert {r["subject"] for r in _csv(out / "summary_by_subject.csv")} == {r["subject"] for r in rows0}
    js = json.loads((out / "summary.json").read_text())
    assert set(js["methods"]) == set(METHODS) and "detection" in js and js["ranking"] == full.summary["ranking"]
    assert set(js["methods"]["hgi-sam"]["per_subject"]) == {r["subject"] for r in rows0}
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete"
    for pkg in ("xaiseg", "torch", "timm", "captum", "grad-cam"):
        assert meta["versions"][pkg], pkg
    assert meta["config"]["methods"] == METHODS and meta["config"]["threshold"] == "grid"
    assert len(meta["data_fingerprint"]) == 64 and len(meta["checkpoint_sha256"]) == 64
    assert meta["seeds"]["benchmark"] == 0 and set(meta["method_wall_s"]) == set(METHODS)
    # where the time went: every pipeline stage that ran is timed, and the parts add up to the run
    timing = meta["timing"]
    assert timing == full.timing and timing["slices"] == 30
    stages = timing["stage_s"]
    for stage in ("load methods", "load", "preprocess", "classify", "attribution", "metrics", "store", "thresholds", "figures",
                  "maps", "report", "other"):
        assert stages[stage] >= 0.0, stage
    assert stages["attribution"] > 0 and stages["load"] > 0 and stages["metrics"] > 0
    assert sum(stages.values()) == pytest.approx(timing["elapsed_s"], rel=1e-6)
    assert sum(timing["stage_share"].values()) == pytest.approx(1.0)
    # the per-method map seconds of slices.csv are measured inside the attribution stage
    assert sum(meta["method_wall_s"].values()) <= stages["attribution"] + 1e-6
    assert timing["slices_per_s"] == pytest.approx(30 / timing["elapsed_s"])
    # hgi-sam and swin-sam explain the same logit: one shared forward per batch of 8 (4 batches)
    assert timing["shared_attention"] == {"passes": 4, "forwards_saved": 4, "backwards_saved": 0}
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert "dice-by-method.png" in figs and "dice-vs-threshold.png" in figs
    assert sum(f.startswith("montage-") for f in figs) == len(METHODS)
    assert all((out / "figures" / f).stat().st_size > 5000 for f in figs)


def _eval_map(raw, item):
    # independent re-implementation of "back to the original grid, brain-mask, renormalise"
    m = F.interpolate(torch.tensor(raw.astype(np.float32))[None, None], size=tuple(item["mask"].shape),
                      mode="bilinear", align_corners=False)[0, 0].numpy().astype(np.float64)
    m = m * np.asarray(item["brain"])
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def test_scores_and_grid_thresholds_match_an_independent_recomputation(assets, full):
    from xaiseg.benchmark.store import safe_name

    data = _dataset(assets)
    rows = _csv(full.out / "slices.csv")
    grid = np.round(np.arange(1, 100) / 100, 2)
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        sal = {}
        for b in sorted({int(r["batch"]) for r in mine}):
            maps = np.load(full.out / "cache" / safe_name(method) / f"batch-{b:06d}.npz")["maps"]
            ids = [int(r["slice_id"]) for r in mine if int(r["batch"]) == b]
            for j, sid in enumerate(ids):
                sal[sid] = _eval_map(maps[j], data[sid])
        pos = [r for r in mine if r["role"] == "positive"]
        # brute-force out-of-fold grid search, Dice by its textbook formula
        def dice(p, g):
            return 2 * np.logical_and(p, g).sum() / (p.sum() + g.sum())

        for fold_info in full.summary["methods"][method]["thresholds"]:
            f = fold_info["fold"]
            calib = [r for r in pos if int(r["fold"]) != f]
            means = [np.mean([dice(sal[int(r["slice_id"])] > t, np.asarray(data[int(r["slice_id"])]["mask"]) > 0) for r in calib])
                     for t in grid]
            assert fold_info["threshold"] == pytest.approx(grid[int(np.argmax(means))], abs=1e-9)
        for r in mine:
            sid = int(r["slice_id"])
            t = float(r["threshold"])
            assert t == full.summary["methods"][method]["thresholds"][int(r["fold"])]["threshold"]
            pred = sal[sid] > t
            assert int(r["pred_area_px"]) == pred.sum()
            assert float(r["pred_area_mm2"]) == pytest.approx(pred.sum() * float(r["spacing_row_mm"]) * float(r["spacing_col_mm"]))
            if r["role"] == "positive":
                assert float(r["dice"]) == pytest.approx(dice(pred, np.asarray(data[sid]["mask"]) > 0), abs=1e-6)
        dices = np.array([float(r["dice"]) for r in pos])
        st = full.summary["methods"][method]["metrics"]["dice"]
        assert st["mean"] == pytest.approx(dices.mean()) and st["std"] == pytest.approx(dices.std(ddof=1))
        assert st["sem"] == pytest.approx(dices.std(ddof=1) / np.sqrt(len(dices))) and st["n"] == len(dices)


def test_detection_uses_the_models_probabilities(assets, full):
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - independent reference

    import xaiseg

    data, m = _dataset(assets), xaiseg.load_model(assets[1], device="cpu")
    x = torch.stack([torch.as_tensor(m.preprocessor(data[i]["image"])[0]) for i in range(len(data))])
    with torch.no_grad():
        p = torch.softmax(m.model(x), dim=1)[:, 1].numpy()
    y = np.array([float(data[i]["labels"][5]) for i in range(len(data))])
    rows = [r for r in _csv(full.out / "slices.csv") if r["method"] == METHODS[0]]
    np.testing.assert_allclose([float(r["prob"]) for r in rows], p, atol=1e-5)
    assert full.summary["detection"]["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)


class _Crash(RuntimeError):
    pass


def test_crash_then_resume_equals_uninterrupted(assets, tmp_path):
    small = dict(limit=16, batch_size=4, folds=2)  # 4 batches × 2 methods = 8 units
    ref = _run(assets, tmp_path / "ref", **small)
    calls = []

    def crash_after_three(method, batch):
        calls.append((method, batch))
        if len(calls) == 3:
            raise _Crash("simulated crash")

    with pytest.raises(_Crash):
        _run(assets, tmp_path / "crash", _after_unit=crash_after_three, **small)
    partial = _csv(tmp_path / "crash" / "slices.csv")
    assert len(partial) == 3 * 4
    with open(tmp_path / "crash" / "slices.csv", "a") as fh:  # a row cut short by the crash
        fh.write("hgi-sam,9,1,002,4,0,posi")
    with pytest.raises(ConfigError, match="already holds a benchmark run"):
        _run(assets, tmp_path / "crash", **small)
    with pytest.raises(ConfigError, match="different configuration"):
        _run(assets, tmp_path / "crash", resume=True, threshold="otsu", **small)
    resumed = _run(assets, tmp_path / "crash", resume=True, **small)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "map_seconds"} for r in rows]

    assert strip(_csv(tmp_path / "crash" / "slices.csv")) == strip(_csv(tmp_path / "ref" / "slices.csv"))
    a = json.loads((tmp_path / "ref" / "summary.json").read_text())
    b = json.loads((tmp_path / "crash" / "summary.json").read_text())
    for s in (a, b):
        for e in s["methods"].values():
            e.pop("wall_time_s")
    assert a == b
    assert resumed.summary["ranking"] == ref.summary["ranking"]
    meta = json.loads((tmp_path / "crash" / "run.json").read_text())
    assert meta["resumed"] is True and meta["attempts"] == 2
    # resuming a complete run recomputes nothing and gives back its summary
    again = _run(assets, tmp_path / "crash", resume=True, _after_unit=crash_after_three, **small)
    assert again.summary["ranking"] == resumed.summary["ranking"] and len(calls) == 3
    for key in ("summary_csv", "summary_json", "summary_by_subject_csv", "run_json", "slices_csv"):
        assert again.paths[key] == resumed.paths[key]  # the same keys as a fresh run's
    with pytest.raises(ConfigError, match="complete and was run without --save-maps"):
        _run(assets, tmp_path / "crash", resume=True, save_maps=True, **small)
    # the resumed attempt's throughput counts the 5 units it computed (4 slices each), not all 8
    timing = json.loads((tmp_path / "crash" / "run.json").read_text())["timing"]
    assert timing["maps_per_s"] * timing["elapsed_s"] == pytest.approx(5 * 4)
    assert timing["slices"] == 12  # batches 1, 2 and 3 (batch 0 was finished by both methods)


def test_resume_refuses_changed_masks(assets, tmp_path):
    import shutil

    import nibabel as nib
    import numpy as np

    data = tmp_path / "data"
    shutil.copytree(assets[0], data)
    small = dict(limit=16, batch_size=4, folds=2)

    def crash_first(method, batch):
        raise _Crash("simulated crash")

    with pytest.raises(_Crash):
        _run((data, assets[1]), tmp_path / "out", _after_unit=crash_first, **small)
    victim = sorted((data / "masks").iterdir())[0]  # same size, other contents: a moved lesion
    img = nib.load(str(victim))
    vol = np.asarray(img.dataobj).copy()
    nib.save(nib.Nifti1Image(np.roll(vol, 5, axis=0), img.affine, img.header), str(victim))
    assert victim.stat().st_size == (assets[0] / "masks" / victim.name).stat().st_size
    with pytest.raises(ConfigError, match="different configuration or data"):
        _run((data, assets[1]), tmp_path / "out", resume=True, **small)


@pytest.mark.parametrize(
    "spec,method",
    [("otsu", "swin-sam"), ("mean", "captum:Saliency"), ("fixed:0.5", "gradcam"), ("percentile:90", "centre-prior")],
)
def test_per_map_thresholds_are_applied_per_slice(assets, tmp_path, spec, method):
    from xaiseg.benchmark.store import safe_name
    from xaiseg.thresholds import parse_threshold

    res = _run(assets, tmp_path / "o", threshold=spec, methods=[method], keep_cache=True, positives_only=True, limit=6)
    rows = _csv(tmp_path / "o" / "slices.csv")
    assert len(rows) == 6 and all(r["role"] == "positive" and r["method"] == method for r in rows)
    maps = np.load(tmp_path / "o" / "cache" / safe_name(method) / "batch-000000.npz")["maps"]
    data = _dataset(assets)
    for j, r in enumerate(rows):
        sal = _eval_map(maps[j], data[int(r["slice_id"])])
        assert float(r["threshold"]) == pytest.approx(parse_threshold(spec).threshold(sal), abs=1e-5)
    assert res.summary["methods"][method]["thresholds"] == []


def test_saved_maps_are_niftis_on_the_original_grid(assets, full):
    import nibabel as nib

    from xaiseg.benchmark.store import safe_name
    from xaiseg.data.nifti import display_transform

    data = _dataset(assets)
    rows = [r for r in _csv(full.out / "slices.csv") if r["method"] == "hgi-sam"]
    maps = np.load(full.out / "cache" / safe_name("hgi-sam") / "batch-000000.npz")["maps"]
    ids = [int(r["slice_id"]) for r in rows if r["batch"] == "0"]
    for j, sid in enumerate(ids[:3]):
        item = data[sid]
        ct = nib.load(item["source"])
        vol = nib.load(full.out / "maps" / safe_name("hgi-sam") / f"{item['subject']}.nii.gz")
        assert vol.shape == ct.shape and np.allclose(vol.affine, ct.affine)
        shown = display_transform(ct).apply(np.asarray(vol.dataobj)[:, :, item["slice_index"]])
        np.testing.assert_allclose(shown, _eval_map(maps[j], item), atol=1e-5)


def test_explain_writes_the_benchmarks_maps_on_the_scans_grid(assets, full, tmp_path):
    import nibabel as nib

    from xaiseg.benchmark.explain import explain_scan
    from xaiseg.benchmark.store import safe_name

    data, ckpt = assets
    scan = data / "ct_scans" / "002.nii"
    vol, path = explain_scan(ckpt, scan, method="hgi-sam", out=tmp_path / "maps.nii.gz",
                             brain_mask=data / "brain_masks" / "002.nii", progress=False)
    ours, ref = nib.load(path), nib.load(scan)
    assert ours.shape == ref.shape and np.allclose(ours.affine, ref.affine)
    assert ours.header.get_data_dtype() == np.float32
    bench = np.asarray(nib.load(full.out / "maps" / safe_name("hgi-sam") / "002.nii.gz").dataobj)
    # same pipeline; only the batch composition differs (float16 rounding of the cached map)
    np.testing.assert_allclose(np.asarray(ours.dataobj), bench, atol=2e-3)
    assert 0.0 <= vol.min() and vol.max() <= 1.0


def test_stage_clock_accumulates_per_stage(monkeypatch):
    from xaiseg.benchmark import timing as timing_mod

    ticks = iter([0.0, 1.5, 2.0, 2.25, 10.0, 13.0])  # three timed spans: 1.5 s, 0.25 s, 3 s
    monkeypatch.setattr(timing_mod.time, "perf_counter", lambda: next(ticks))
    clock = timing_mod.StageClock()
    with clock("load"):
        pass
    with clock("attribution"):
        pass
    with pytest.raises(RuntimeError):  # a failing stage is still charged
        with clock("load"):
            raise RuntimeError("boom")
    rep = clock.report(elapsed_s=6.0, n_slices=12, n_maps=24)
    assert rep["stage_s"] == {"load": 4.5, "attribution": 0.25, "other": pytest.approx(1.25)}
    assert rep["stage_share"]["load"] == pytest.approx(0.75)
    assert rep["slices_per_s"] == 2.0 and rep["maps_per_s"] == 4.0
    line = timing_mod.format_timing(rep)
    assert line.startswith("12 slices in 6.0 s (2.00 slices/s, 4.0 maps/s): load 75%, other 21%, attribution 4%")


def test_the_automatic_brain_mask_is_computed_once_per_slice(assets, tmp_path, monkeypatch):
    """The scores pass reuses the maps pass's brain masks (cache/brain@): one computation per
    slice and run, and the same scores as a run that computes them again in the scores pass."""
    import shutil

    from xaiseg.benchmark import inputs
    from xaiseg.benchmark.store import RunStore

    data = tmp_path / "no-brain-masks"
    shutil.copytree(assets[0], data)
    shutil.rmtree(data / "brain_masks")  # the loader then gives no brain: the automatic mask is used
    calls = []
    real = inputs._auto_brain
    monkeypatch.setattr(inputs, "_auto_brain", lambda hu, sp: calls.append(1) or real(hu, sp))
    cached = _run((data, assets[1]), tmp_path / "cached", keep_cache=True)
    n = len({r["slice_id"] for r in _csv(tmp_path / "cached" / "slices.csv")})
    assert len(calls) == n and sorted((tmp_path / "cached" / "cache" / "brain@").iterdir())
    calls.clear()
    monkeypatch.setattr(RunStore, "load_brains", lambda self, b, k: None)  # recompute in the scores pass
    _run((data, assets[1]), tmp_path / "again")
    assert len(calls) == 2 * n
    strip = lambda rows: [{k: v for k, v in r.items() if k != "map_seconds"} for r in rows]  # noqa: E731
    assert strip(_csv(tmp_path / "cached" / "slices.csv")) == strip(_csv(tmp_path / "again" / "slices.csv"))
    assert cached.summary["methods"]["hgi-sam"]["metrics"]["dice"]["n"] > 0


def test_background_loading_gives_the_same_rows_as_loading_in_the_main_thread(assets, tmp_path):
    _run(assets, tmp_path / "w0", workers=0)
    _run(assets, tmp_path / "w2", workers=2, batch_size=4)
    _run(assets, tmp_path / "w0b4", workers=0, batch_size=4)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "map_seconds"} for r in rows]  # noqa: E731
    assert strip(_csv(tmp_path / "w2" / "slices.csv")) == strip(_csv(tmp_path / "w0b4" / "slices.csv"))
    assert _csv(tmp_path / "w0" / "slices.csv")  # and the run itself works without threads
    meta = json.loads((tmp_path / "w2" / "run.json").read_text())
    assert "workers" not in meta["config"]  # how a run is computed is not part of its results' key


def test_prefetched_keeps_order_skips_and_raises_for_the_batch_that_failed():
    from xaiseg.benchmark.prefetch import prefetched
    from xaiseg.benchmark.timing import StageClock

    seen = []

    def load(b):
        seen.append(b)
        if b == 4:
            raise ValueError("bad slice in batch 4")
        return [b * 10]

    for workers in (0, 1, 3):
        seen.clear()
        got = []
        with pytest.raises(ValueError, match="batch 4"):
            for b, x in prefetched(load, 6, workers, StageClock(), skip=lambda b: b == 1):
                got.append((b, x))
        assert got == [(0, [0]), (2, [20]), (3, [30])]
        assert 1 not in seen
