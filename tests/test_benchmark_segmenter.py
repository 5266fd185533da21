"""``xaiseg benchmark --segmenter DIR``: a segmenter trained with --folds on the test phantom
is a row of the table beside the classifier's methods, on the same slices, its Dice equal to a
Dice computed here from its saved probability maps; a segmenter that saw a scored subject, or a
segmenter given as --checkpoint (and the reverse), is refused in one line before any work."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from xaiseg.benchmark import run
from xaiseg.errors import XaisegError

from .benchmark_helpers import INPUT, make_checkpoint, make_phantom

TINY_UNET = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 0}
WINDOWS = ((40.0, 120.0), (80.0, 200.0), (600.0, 2800.0))  # the test classifier's
SMALL = dict(batch_size=8, folds=2, methods="saliency", threshold="grid", figures=False, progress=False)


def _train(data, out, folds):
    from xaiseg.segmenters import SegmentationConfig, train_segmenter

    train_segmenter(SegmentationConfig(out=str(out), data=str(data), model="unet", model_kwargs=TINY_UNET,
                                       image_size=INPUT, windows=WINDOWS, epochs=1, batch_size=8, folds=folds,
                                       val_fraction=0.25, device="cpu", progress=False, lr=3e-3,
                                       train_on="disk"))
    return out


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    data = make_phantom(root / "phantom")
    return data, make_checkpoint(root / "ckpt"), _train(data, root / "unet", folds=2)


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_segmenter_row_dice_equals_dice_of_its_saved_probability_maps(assets, tmp_path):
    import nibabel as nib

    from xaiseg.benchmark.store import safe_name
    from xaiseg.data import open_dataset
    from xaiseg.data.nifti import display_transform
    from xaiseg.segmenters import SegmenterMaps, load_segmenter

    data, ckpt, unet = assets
    res = run(data=data, checkpoint=ckpt, segmenter=[unet], out=tmp_path / "o", save_maps=True, keep_cache=True,
              **SMALL)
    rows = _csv(tmp_path / "o" / "slices.csv")
    assert {r["method"] for r in rows} == {"saliency", "unet"}
    ids = {m: sorted(int(r["slice_id"]) for r in rows if r["method"] == m) for m in ("saliency", "unet")}
    assert ids["saliency"] == ids["unet"]  # the same slices
    assert "unet" in res.table() and "classifier detection" in res.table()
    ds = open_dataset(data, "physionet")
    # the cached maps are the segmenter's probabilities from the model that held each subject out
    maps = SegmenterMaps(load_segmenter(unet, device="cpu"))
    first = [r for r in rows if r["method"] == "unet" and r["batch"] == "0"]
    pre = load_segmenter(unet, device="cpu").preprocessor
    import torch

    x = torch.stack([torch.as_tensor(np.asarray(pre(np.asarray(ds[int(r["slice_id"])]["image"], np.float32))[0]))
                     for r in first])
    expect = maps.attribute(x, [r["subject"] for r in first]).numpy()
    cached = np.load(tmp_path / "o" / "cache" / "unet" / "batch-000000.npz")["maps"].astype(np.float32)
    np.testing.assert_allclose(cached, expect, atol=1e-3)
    dices = []
    for r in rows:
        if r["method"] != "unet" or r["role"] != "positive":
            continue
        item = ds[int(r["slice_id"])]
        vol = nib.load(tmp_path / "o" / "maps" / safe_name("unet") / f"{item['subject']}.nii.gz")
        sal = display_transform(nib.load(item["source"])).apply(np.asarray(vol.dataobj)[:, :, item["slice_index"]])
        pred, gt = sal > float(r["threshold"]), np.asarray(item["mask"]) > 0
        d = 2 * np.logical_and(pred, gt).sum() / (pred.sum() + gt.sum())
        assert float(r["dice"]) == pytest.approx(d, abs=1e-6)
        dices.append(d)
    st = res.summary["methods"]["unet"]["metrics"]["dice"]
    assert st["mean"] == pytest.approx(np.mean(dices)) and st["n"] == len(dices)
    summary = {r["method"]: r for r in _csv(tmp_path / "o" / "summary.csv")}
    assert float(summary["unet"]["dice_mean"]) == pytest.approx(np.mean(dices))
    assert summary["unet"]["detection_auc"] == ""  # a segmenter detects nothing; the classifier's row does


def test_segmenter_beside_two_classifiers_and_the_refusals(assets, tmp_path):
    data, ckpt, unet = assets
    res = run(data=data, checkpoint=[f"a={ckpt}", f"b={ckpt}"], segmenter=[f"mine={unet}"], out=tmp_path / "two",
              **SMALL)
    rows = _csv(tmp_path / "two" / "slices.csv")
    assert {(r["checkpoint"], r["method"]) for r in rows} == {("a", "saliency"), ("b", "saliency"), ("", "mine")}
    assert set(res.summary["detection_by_checkpoint"]) == {"a", "b"}
    with pytest.raises(XaisegError, match="is a segmenter checkpoint"):
        run(data=data, checkpoint=unet, out=tmp_path / "x", **SMALL)
    with pytest.raises(XaisegError, match="is a classifier checkpoint"):
        run(data=data, checkpoint=ckpt, segmenter=[ckpt], out=tmp_path / "y", **SMALL)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_segmenter_that_saw_a_scored_subject_is_refused(assets, tmp_path):
    data, ckpt, _unet = assets
    leaky = _train(data, tmp_path / "leaky", folds=0)  # one model trained on every subject
    with pytest.raises(XaisegError, match="was in the training data of every model.*would leak"):
        run(data=data, checkpoint=ckpt, segmenter=[leaky], out=tmp_path / "z", **SMALL)
    assert not (tmp_path / "z").exists()


def _explain(*args: str):
    from click.testing import CliRunner

    from xaiseg.cli import main

    return CliRunner().invoke(main, ["explain", *args], catch_exceptions=False)


def test_explain_with_a_segmenter_writes_the_benchmark_rows_maps(assets, tmp_path):
    """`xaiseg explain --segmenter` writes, for a scan of the data set, exactly the probability
    volume the benchmark saves for that subject's row (the held-out fold's model), and the
    guard and the option clashes are one line each."""
    import nibabel as nib

    from xaiseg.segmenters import load_segmenter

    data, ckpt, unet = assets
    run(data=data, checkpoint=ckpt, segmenter=[unet], out=tmp_path / "o", save_maps=True, **SMALL)
    saved = sorted((tmp_path / "o" / "maps" / "unet").glob("*.nii.gz"))
    subject = saved[0].name[: -len(".nii.gz")]
    scan = data / "ct_scans" / f"{subject}.nii"
    out = tmp_path / "probs.nii.gz"
    brain = data / "brain_masks" / f"{subject}.nii"  # the benchmark's brain mask for this scan
    r = _explain("--segmenter", str(unet), "--input", str(scan), "--out", str(out), "--brain-mask", str(brain),
                 "--device", "cpu")
    assert r.exit_code == 0, r.output
    mine, theirs = nib.load(out), nib.load(saved[0])
    assert mine.shape == theirs.shape and np.allclose(mine.affine, nib.load(scan).affine)
    from xaiseg.data import open_dataset

    ds = open_dataset(data, "physionet")
    scored = sorted({int(ds[int(x["slice_id"])]["slice_index"]) for x in _csv(tmp_path / "o" / "slices.csv")
                     if x["method"] == "unet" and x["subject"] == subject})
    assert scored  # the benchmark writes the slices it scored
    a, b = np.asarray(mine.dataobj), np.asarray(theirs.dataobj)
    for k in scored:
        np.testing.assert_allclose(a[:, :, k], b[:, :, k], atol=1e-6)
    # another fold's model (a subject id this segmenter never saw: the mean of every fold) differs
    loaded = load_segmenter(unet, device="cpu")
    assert len(loaded.models_for("not-a-subject")) == len(loaded.members) == 2
    r = _explain("--segmenter", str(unet), "--subject", "not-a-subject", "--input", str(scan), "--out",
                 str(tmp_path / "mean.nii.gz"), "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert not np.allclose(np.asarray(nib.load(tmp_path / "mean.nii.gz").dataobj), np.asarray(mine.dataobj))

    leaky = _train(data, tmp_path / "leaky", folds=0)
    for args, why in (
        (["--segmenter", str(leaky)], "would leak"),
        (["--segmenter", str(unet), "--checkpoint", str(ckpt)], "give one"),
        (["--segmenter", str(unet), "--method", "saliency"], "drop --method"),
        (["--checkpoint", str(unet)], "is a segmenter checkpoint"),
        (["--segmenter", str(ckpt)], "is a classifier checkpoint"),
        (["--checkpoint", str(ckpt), "--subject", subject], "--subject applies to --segmenter"),
    ):
        bad = tmp_path / "bad.nii.gz"
        r = _explain(*args, "--input", str(scan), "--out", str(bad), "--device", "cpu")
        assert r.exit_code == 1 and r.output.startswith("Error: ") and why in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1 and not bad.exists()
