"""The benchmark end to end on a tiny in-memory data set and a tiny untrained Swin: every
output file and its columns, scores checked against an independent recomputation, grid
thresholds against a brute-force search, and crash + resume equal to an uninterrupted run."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xaiseg.benchmark import run
from xaiseg.errors import ConfigError

from .conftest import tiny_swin

SIZE, INPUT = 40, 32
METHODS = ["hgi-sam", "swin-sam"]


class _Geometry:
    def __init__(self, shape):
        self.shape = shape

    def to_original(self, m):
        t = torch.as_tensor(np.asarray(m, dtype=np.float32))[None, None]
        return F.interpolate(t, size=self.shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def _preprocess(hu, mask, brain):
    t = F.interpolate(torch.as_tensor(hu)[None, None], size=(INPUT, INPUT), mode="bilinear", align_corners=False)[0]
    img = torch.cat([((t - (c - w / 2)) / w).clamp(0, 1) for c, w in ((40, 120), (80, 200), (600, 2800))])
    return img, None, None, _Geometry(hu.shape)


class _Data:
    """5 subjects × 4 slices; square 'bleeds' of +40 HU on noise; brain = all but a border."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.items = []
        for s in range(5):
            for k in range(4):
                hu = rng.normal(30, 5, (SIZE, SIZE)).astype(np.float32)
                mask = np.zeros((SIZE, SIZE), np.uint8)
                labels = np.zeros(6, np.float32)
                if (s + k) % 3:
                    r, c = rng.integers(8, SIZE - 8, 2)
                    mask[r - 4 : r + 4, c - 3 : c + 4] = 1
                    hu[mask > 0] += 40
                    labels[[1, 5]] = 1
                brain = np.zeros((SIZE, SIZE), np.uint8)
                brain[2:-2, 2:-2] = 1
                self.items.append({"image": hu, "mask": mask, "labels": labels, "subject": f"s{s}", "slice": k + 1,
                                   "slice_index": k, "spacing": (0.8, 0.9), "source": f"s{s}.nii", "brain": brain})
        self.records = [SimpleNamespace(subject=i["subject"], slice=i["slice"], labels=i["labels"]) for i in self.items]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return dict(self.items[i])


def _model():
    m = tiny_swin(img_size=INPUT, window_size=4, depths=(2, 2, 2), num_heads=(1, 2, 2), embed_dim=8)
    return SimpleNamespace(model=m, config={"target_index": 1, "task": "binary", "model": "tiny-test"}, preprocessor=_preprocess)


def _run(out, **kw):
    args = dict(dataset=_Data(), model=_model(), methods=METHODS, threshold="grid", folds=3, batch_size=6,
                out=out, figures=False, progress=False)
    args.update(kw)
    return run(**args)


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    return _run(out, figures=True, keep_cache=True, montage_slices=3)


def test_every_output_file_and_its_columns(full):
    out = full.out
    rows = _csv(out / "slices.csv")
    assert len(rows) == len(METHODS) * 20
    for col in ("method", "subject", "slice", "fold", "role", "any", "prob", "threshold", "dice", "iou", "hd95",
                "auroc", "relevance_mass", "pointing_game", "pred_area_px", "pred_area_mm2", "intraparenchymal"):
        assert col in rows[0], col
    summary = _csv(out / "summary.csv")
    assert [r["method"] for r in summary] == full.summary["ranking"] and len(summary) == 2
    for col in ("dice_mean", "dice_std", "dice_sem", "iou_mean", "hd95_mean", "auroc_mean", "relevance_mass_mean",
                "pointing_game_mean", "fold_thresholds", "negative_pred_area_mm2_mean", "detection_auc",
                "detection_sensitivity", "detection_specificity", "detection_f1", "detection_accuracy"):
        assert col in summary[0], col
    assert len(summary[0]["fold_thresholds"].split(";")) == 3
    assert {r["subtype"] for r in _csv(out / "summary_by_subtype.csv")} == {"intraparenchymal"}
    assert len({r["subject"] for r in _csv(out / "summary_by_subject.csv")}) == 5
    js = json.loads((out / "summary.json").read_text())
    assert set(js["methods"]) == set(METHODS) and "detection" in js and js["ranking"] == full.summary["ranking"]
    assert set(js["methods"]["hgi-sam"]["per_subject"]) == {f"s{i}" for i in range(5)}
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete"
    for pkg in ("xaiseg", "torch", "timm", "captum", "grad-cam"):
        assert meta["versions"][pkg], pkg
    assert meta["config"]["methods"] == METHODS and meta["config"]["threshold"] == "grid"
    assert len(meta["data_fingerprint"]) == 64 and len(meta["checkpoint_sha256"]) == 64
    assert meta["seeds"]["benchmark"] == 0 and set(meta["method_wall_s"]) == set(METHODS)
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert "dice-by-method.png" in figs and "dice-vs-threshold.png" in figs
    assert sum(f.startswith("montage-") for f in figs) == len(METHODS)
    assert all((out / "figures" / f).stat().st_size > 5000 for f in figs)


def _eval_map(raw, item):
    # independent re-implementation of "back to the original grid, brain-mask, renormalise"
    m = F.interpolate(torch.tensor(raw.astype(np.float32))[None, None], size=item["mask"].shape,
                      mode="bilinear", align_corners=False)[0, 0].numpy().astype(np.float64)
    m = m * item["brain"]
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def test_scores_and_grid_thresholds_match_an_independent_recomputation(full):
    from xaiseg.benchmark.store import safe_name

    data = _Data()
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
            means = [np.mean([dice(sal[int(r["slice_id"])] > t, data[int(r["slice_id"])]["mask"] > 0) for r in calib])
                     for t in grid]
            assert fold_info["threshold"] == pytest.approx(grid[int(np.argmax(means))], abs=1e-9)
        for r in mine:
            sid = int(r["slice_id"])
            t = float(r["threshold"])
            assert t == full.summary["methods"][method]["thresholds"][int(r["fold"])]["threshold"]
            pred = sal[sid] > t
            assert int(r["pred_area_px"]) == pred.sum()
            assert float(r["pred_area_mm2"]) == pytest.approx(pred.sum() * 0.8 * 0.9)
            if r["role"] == "positive":
                assert float(r["dice"]) == pytest.approx(dice(pred, data[sid]["mask"] > 0), abs=1e-6)
        dices = np.array([float(r["dice"]) for r in pos])
        st = full.summary["methods"][method]["metrics"]["dice"]
        assert st["mean"] == pytest.approx(dices.mean()) and st["std"] == pytest.approx(dices.std(ddof=1))
        assert st["sem"] == pytest.approx(dices.std(ddof=1) / np.sqrt(len(dices))) and st["n"] == len(dices)


def test_detection_uses_the_models_probabilities(full):
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - independent reference

    data, m = _Data(), _model()
    x = torch.stack([_preprocess(data[i]["image"], None, None)[0] for i in range(len(data))])
    with torch.no_grad():
        p = torch.softmax(m.model(x), dim=1)[:, 1].numpy()
    y = np.array([data[i]["labels"][5] for i in range(len(data))])
    rows = [r for r in _csv(full.out / "slices.csv") if r["method"] == METHODS[0]]
    np.testing.assert_allclose([float(r["prob"]) for r in rows], p, atol=1e-5)
    assert full.summary["detection"]["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)


class _Crash(RuntimeError):
    pass


def test_crash_then_resume_equals_uninterrupted(tmp_path):
    ref = _run(tmp_path / "ref")
    calls = []

    def crash_after_three(method, batch):
        calls.append((method, batch))
        if len(calls) == 3:
            raise _Crash("simulated crash")

    with pytest.raises(_Crash):
        _run(tmp_path / "crash", _after_unit=crash_after_three)
    partial = _csv(tmp_path / "crash" / "slices.csv")
    assert len(partial) == 3 * 6
    with open(tmp_path / "crash" / "slices.csv", "a") as fh:  # a row cut short by the crash
        fh.write("hgi-sam,7,1,s1,4,0,posi")
    with pytest.raises(ConfigError, match="already holds a benchmark run"):
        _run(tmp_path / "crash")
    with pytest.raises(ConfigError, match="different configuration"):
        _run(tmp_path / "crash", resume=True, threshold="otsu")
    resumed = _run(tmp_path / "crash", resume=True)

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
    assert json.loads((tmp_path / "crash" / "run.json").read_text())["resumed"] is True


@pytest.mark.parametrize("spec", ["otsu", "mean", "fixed:0.5", "percentile:90"])
def test_per_map_thresholds_are_applied_per_slice(tmp_path, spec):
    from xaiseg.thresholds import parse_threshold

    res = _run(tmp_path / "o", threshold=spec, methods=["swin-sam"], keep_cache=True, positives_only=True, limit=6)
    rows = _csv(tmp_path / "o" / "slices.csv")
    assert len(rows) == 6 and all(r["role"] == "positive" for r in rows)
    from xaiseg.benchmark.store import safe_name

    maps = np.load(tmp_path / "o" / "cache" / safe_name("swin-sam") / "batch-000000.npz")["maps"]
    data = _Data()
    for j, r in enumerate(rows):
        sal = _eval_map(maps[j], data[int(r["slice_id"])])
        assert float(r["threshold"]) == pytest.approx(parse_threshold(spec).threshold(sal), abs=1e-5)
    assert res.summary["methods"]["swin-sam"]["thresholds"] == []
