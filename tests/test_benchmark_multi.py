"""Several classifiers in one benchmark run (``--checkpoint NAME=DIR`` repeated) and a subtype
classifier explained at each subtype's logit (``--targets subtypes``): every row of a
two-classifier run equals the row of that classifier run alone, each classifier's detection is
its own, resuming an interrupted two-classifier run equals an uninterrupted one, and a subtype
row's Dice per subtype equals a Dice recomputed here from its saved maps."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from xaiseg.benchmark import run
from xaiseg.data.constants import LABELS
from xaiseg.errors import ConfigError

from .benchmark_helpers import INPUT, make_checkpoint, make_phantom
from .conftest import tiny_swin

METHODS = "saliency,gradcam"
SMALL = dict(limit=12, batch_size=4, folds=2, methods=METHODS, threshold="grid", figures=False, progress=False)


def _subtype_checkpoint(out):
    from xaiseg.training import save_checkpoint

    from .benchmark_helpers import MODEL_KWARGS

    model = tiny_swin(img_size=INPUT, window_size=4, depths=(2, 2, 2), num_heads=(1, 2, 2), embed_dim=8,
                      num_classes=len(LABELS), seed=1)
    config = {
        "timm_name": "swin_tiny_patch4_window7_224", "model_kwargs": MODEL_KWARGS, "num_classes": len(LABELS),
        "in_chans": 3, "task": "subtypes", "class_names": list(LABELS), "target_index": LABELS.index("any"),
        "input_size": INPUT, "windows": [[40.0, 120.0], [80.0, 200.0], [600.0, 2800.0]], "model": "tiny-subtypes",
    }
    return save_checkpoint(out, model, config)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    return make_phantom(root / "phantom"), make_checkpoint(root / "binary"), _subtype_checkpoint(root / "subtypes")


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _drop(row, *keys):
    return {k: v for k, v in row.items() if k not in keys}


@pytest.fixture(scope="module")
def runs(assets, tmp_path_factory):
    data, binary, subtypes = assets
    root = tmp_path_factory.mktemp("runs")
    both = run(data=data, checkpoint=[f"bin={binary}", f"sub={subtypes}"], out=root / "both", **SMALL)
    alone = {name: run(data=data, checkpoint=ck, out=root / name, **SMALL)
             for name, ck in (("bin", binary), ("sub", subtypes))}
    return both, alone


def test_every_classifier_method_row_equals_that_classifier_run_alone(runs):
    both, alone = runs
    rows = _csv(both.out / "slices.csv")
    assert list(rows[0])[:2] == ["checkpoint", "method"]
    labels = {(r["checkpoint"], r["method"]) for r in rows}
    assert labels == {(c, m) for c in ("bin", "sub") for m in METHODS.split(",")}
    slices = {lab: sorted(int(r["slice_id"]) for r in rows if (r["checkpoint"], r["method"]) == lab) for lab in labels}
    assert len({tuple(v) for v in slices.values()}) == 1  # every row scored on the same slices
    for name, single in alone.items():
        ref = _csv(single.out / "slices.csv")
        assert "checkpoint" not in ref[0]  # one classifier: the output of before
        mine = [_drop(r, "checkpoint", "map_seconds") for r in rows if r["checkpoint"] == name]
        assert mine == [_drop(r, "map_seconds") for r in ref]
        ref_summary = {r["method"]: _drop(r, "rank", "wall_time_s") for r in _csv(single.out / "summary.csv")}
        got = {r["method"]: _drop(r, "rank", "wall_time_s", "checkpoint")
               for r in _csv(both.out / "summary.csv") if r["checkpoint"] == name}
        assert got == ref_summary  # Dice, thresholds (calibrated per row) and detection of that classifier
        for group in ("summary_by_subtype.csv", "summary_by_subject.csv"):
            ref_g = sorted(map(str, _csv(single.out / group)))
            got_g = sorted(str(_drop(r, "checkpoint")) for r in _csv(both.out / group) if r["checkpoint"] == name)
            assert got_g == ref_g
        assert both.summary["detection_by_checkpoint"][name] == single.summary["detection"]
        for m in METHODS.split(","):
            assert both.summary["methods"][f"{name}/{m}"]["thresholds"] == single.summary["methods"][m]["thresholds"]
    det = both.summary["detection_by_checkpoint"]
    assert det["bin"]["auc"] != det["sub"]["auc"]  # two different classifiers, each reported


def test_table_names_rows_and_gives_one_detection_line_per_classifier(runs):
    both, _alone = runs
    text = both.table()
    for c in ("bin", "sub"):
        for m in METHODS.split(","):
            assert f"\n{c}/{m} " in text
        assert f"classifier {c} detection: AUC" in text
    config = json.loads((both.out / "run.json").read_text())["config"]
    assert set(config["checkpoint"]) == {"bin", "sub"} and config["task"] == {"bin": "binary", "sub": "subtypes"}


class _Crash(RuntimeError):
    pass


def test_interrupted_two_classifier_run_resumes_to_the_uninterrupted_one(assets, runs, tmp_path):
    data, binary, subtypes = assets
    both, _alone = runs
    calls = []

    def crash(label, batch):
        calls.append(label)
        if len(calls) == 7:  # mid-way: 3 batches × 4 rows
            raise _Crash("simulated crash")

    args = dict(data=data, checkpoint=[f"bin={binary}", f"sub={subtypes}"], out=tmp_path / "r", **SMALL)
    with pytest.raises(_Crash):
        run(**args, _after_unit=crash)
    with pytest.raises(ConfigError, match="different configuration"):  # the key holds the classifiers
        run(**(args | {"checkpoint": [f"bin={binary}", f"other={subtypes}"]}), resume=True)
    run(**args, resume=True)
    assert [_drop(r, "map_seconds") for r in _csv(tmp_path / "r" / "slices.csv")] == \
        [_drop(r, "map_seconds") for r in _csv(both.out / "slices.csv")]
    a, b = (json.loads((d / "summary.json").read_text()) for d in (tmp_path / "r", both.out))
    for s in (a, b):
        for e in s["methods"].values():
            e.pop("wall_time_s")
    assert a == b


def test_subtype_logits_are_explained_as_extra_rows_scored_per_subtype(assets, tmp_path):
    import nibabel as nib

    import xaiseg
    from xaiseg.benchmark.store import safe_name
    from xaiseg.data import open_dataset
    from xaiseg.data.nifti import display_transform

    data, _binary, subtypes = assets
    res = run(data=data, checkpoint=subtypes, out=tmp_path / "st", targets="subtypes", save_maps=True,
              keep_cache=True, **(SMALL | {"methods": "saliency"}))
    rows = _csv(tmp_path / "st" / "slices.csv")
    subs = [lab for lab in LABELS if lab != "any"]
    assert {r["method"] for r in rows} == {"saliency"} | {f"saliency@{s}" for s in subs}
    ds = open_dataset(data, "physionet")
    loaded = xaiseg.load_model(subtypes, device="cpu")
    by_sub = {(r["method"], r["subtype"]): r for r in _csv(tmp_path / "st" / "summary_by_subtype.csv")}
    present = [s for s in subs if any(r[s] == "1" and r["role"] == "positive" for r in rows)]
    assert present, "the phantom's positive slices carry subtype labels"
    for s in present:
        label = f"saliency@{s}"
        mine = [r for r in rows if r["method"] == label]
        # the cached maps are the gradient of that subtype's logit, not of `any`
        ids = [int(r["slice_id"]) for r in mine if r["batch"] == "0"]
        x = torch.stack([loaded.prepare(np.asarray(ds[i]["image"], np.float32))[0][0] for i in ids]).requires_grad_()
        loaded.model(x)[:, LABELS.index(s)].sum().backward()
        grad = x.grad.abs().sum(dim=1)  # captum's Saliency: |gradient|, summed over channels, min–max
        expect = (grad - grad.amin(dim=(1, 2), keepdim=True)) / (grad.amax(dim=(1, 2), keepdim=True)
                                                               - grad.amin(dim=(1, 2), keepdim=True))
        cached = np.load(tmp_path / "st" / "cache" / safe_name(label) / "batch-000000.npz")["maps"].astype(np.float32)
        np.testing.assert_allclose(cached, expect.numpy(), atol=2e-3)
        # Dice per subtype from the saved maps, thresholded at each row's threshold, by its formula
        dices = []
        for r in mine:
            if r["role"] != "positive" or r[s] != "1":
                continue
            item = ds[int(r["slice_id"])]
            vol = nib.load(tmp_path / "st" / "maps" / safe_name(label) / f"{item['subject']}.nii.gz")
            sal = display_transform(nib.load(item["source"])).apply(np.asarray(vol.dataobj)[:, :, item["slice_index"]])
            pred, gt = sal > float(r["threshold"]), np.asarray(item["mask"]) > 0
            dices.append(2 * np.logical_and(pred, gt).sum() / (pred.sum() + gt.sum()))
        assert float(by_sub[(label, s)]["dice_mean"]) == pytest.approx(np.mean(dices), abs=1e-6)
        assert int(by_sub[(label, s)]["dice_n"]) == len(dices)
    assert res.summary["detection"]  # one classifier: detection as before


def test_checkpoint_options_fail_in_one_line(assets, tmp_path):
    data, binary, _subtypes = assets
    with pytest.raises(ConfigError, match="names bin more than once"):
        run(data=data, checkpoint=[f"bin={binary}", f"bin={binary}"], out=tmp_path / "a", **SMALL)
    with pytest.raises(ConfigError, match="names binary more than once"):  # the name defaults to the folder's
        run(data=data, checkpoint=[binary, binary], out=tmp_path / "b", **SMALL)
    with pytest.raises(ConfigError, match="needs a subtype classifier"):
        run(data=data, checkpoint=binary, targets="subtypes", out=tmp_path / "c", **SMALL)
    with pytest.raises(ConfigError, match="--targets"):
        run(data=data, checkpoint=binary, targets="every", out=tmp_path / "d", **SMALL)
    with pytest.raises(ConfigError, match="NAME=DIR"):
        run(data=data, checkpoint=["b@d=x"], out=tmp_path / "e", **SMALL)


def test_command_line_runs_two_classifiers_with_figures(assets, tmp_path):
    from click.testing import CliRunner

    from xaiseg.cli import main

    data, binary, subtypes = assets
    common = ["benchmark", "--data", str(data), "--methods", "saliency", "--limit", "8", "--folds", "2",
              "--device", "cpu"]
    r = CliRunner().invoke(main, [*common, "--checkpoint", f"bin={binary}", "--checkpoint", str(subtypes),
                                  "--targets", "subtypes", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "bin/saliency " in r.output and "subtypes/saliency@subdural " in r.output
    assert "classifier bin detection: AUC" in r.output and "classifier subtypes detection: AUC" in r.output
    assert (tmp_path / "o" / "figures" / "dice-by-method.png").exists()
    r = CliRunner().invoke(main, [*common, "--checkpoint", str(binary), "--checkpoint", str(binary),
                                  "--out", str(tmp_path / "p")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "names binary more than once" in r.output
    assert not (tmp_path / "p").exists()  # checked before any work
