"""A tiny segmenter trained with --folds 3 on a tiny written phantom: the folds, the maps, Dice,
the leakage guard, resume, and the checkpoint kinds.

Maps are checked against each fold's network rebuilt here from MONAI and the safetensors file
alone, and Dice against a numpy Dice written out in this file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xaiseg.errors import CheckpointError, ConfigError
from xaiseg.segmenters import (LeakageError, SegmentationConfig, SegmenterMaps, load_segmenter, segmenter_for_subject,
                               train_segmenter)

TINY = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 0}


class _Stop(Exception):
    pass


def _cfg(data: Path, out: Path, **kw) -> SegmentationConfig:
    base = dict(out=str(out), data=str(data), model="unet", model_kwargs=TINY, image_size=32, epochs=2, batch_size=8,
                folds=3, val_fraction=0.25, device="cpu", progress=False, lr=3e-3)
    return SegmentationConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from xaiseg.data.phantom_writer import write_phantom

    return write_phantom(tmp_path_factory.mktemp("ph") / "ph", subjects=6, slices_per_subject=8, size=64,
                         prevalence=1.0, seed=0, progress=False)


@pytest.fixture(scope="module")
def trained(phantom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seg") / "unet"
    train_segmenter(_cfg(phantom, out))
    return out


def _slices(phantom: Path, pre):
    from xaiseg.data import open_dataset

    ds = open_dataset(phantom)
    items = [ds[i] for i in range(len(ds))]
    outs = [pre(np.asarray(it["image"]), mask=np.asarray(it["mask"])) for it in items]
    images = torch.stack([torch.as_tensor(o.image) for o in outs])
    masks = np.stack([np.asarray(o.mask) > 0 for o in outs])
    return images, masks, [str(it["subject"]) for it in items]


def _numpy_dice(p: np.ndarray, g: np.ndarray) -> float:
    inter, total = np.logical_and(p, g).sum(), p.sum() + g.sum()
    return 1.0 if total == 0 else 2.0 * inter / total


def test_folds_partition_the_subjects_and_no_model_saw_its_fold(trained, phantom):
    index = json.loads((trained / "config.json").read_text())
    assert index["kind"] == "segmenter" and index["architecture"] == "unet" and len(index["folds"]) == 3
    all_subjects = sorted({s for f in index["folds"] for s in f["held_out"]})
    assert all_subjects == ["001", "002", "003", "004", "005", "006"]
    from xaiseg.data import open_dataset

    positive = {r.subject for r in open_dataset(phantom).records if r.any}
    for f in index["folds"]:
        cfg = json.loads((trained / f["dir"] / "config.json").read_text())
        sub = cfg["subjects"]
        assert sub["held_out"] == f["held_out"]
        assert not set(sub["train"] + sub["val"]) & set(sub["held_out"])
        assert set(sub["val"]) & positive  # the validation split has lesions to score
        assert sorted(sub["train"] + sub["val"] + sub["held_out"]) == all_subjects
        assert len(open(trained / f["dir"] / "train_log.jsonl").readlines()) == 2


def test_maps_come_from_the_fold_that_held_the_subject_out(trained, phantom):
    from monai.networks.nets import UNet
    from safetensors.torch import load_file

    seg = load_segmenter(trained, device="cpu")
    images, _masks, subjects = _slices(phantom, seg.preprocessor)
    maps = SegmenterMaps(seg).attribute(images, subjects)
    assert maps.shape == (len(images), 32, 32) and maps.dtype == torch.float32
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    for f in json.loads((trained / "config.json").read_text())["folds"]:
        net = UNet(spatial_dims=2, in_channels=3, out_channels=1, **TINY)
        net.load_state_dict(load_file(str(trained / f["dir"] / "model.safetensors")))
        rows = [i for i, s in enumerate(subjects) if s in f["held_out"]]
        with torch.no_grad():
            expected = torch.sigmoid(net.eval()((images[rows] - 0.5) / 0.5))[:, 0]
        torch.testing.assert_close(maps[rows], expected, rtol=1e-5, atol=1e-6)
        assert [m.path.name for m in segmenter_for_subject(seg, subjects[rows[0]])] == [f["dir"]]


def test_dice_with_xaiseg_thresholds_equals_numpy_dice(trained, phantom):
    from xaiseg.metrics import binarize, dice
    from xaiseg.thresholds import parse_threshold

    seg = load_segmenter(trained, device="cpu")
    images, masks, subjects = _slices(phantom, seg.preprocessor)
    maps = SegmenterMaps(seg).attribute(images, subjects).numpy()
    strategy = parse_threshold("fixed:0.5")
    ours = [dice(binarize(m, strategy.threshold(m)), g) for m, g in zip(maps, masks)]
    theirs = [_numpy_dice(m > 0.5, g) for m, g in zip(maps, masks)]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    # the held-out Dice each fold stored is the numpy Dice of its maps on its positive slices
    for f in json.loads((trained / "config.json").read_text())["folds"]:
        stored = json.loads((trained / f["dir"] / "config.json").read_text())["metrics"]["held_out_dice"]
        rows = [i for i, s in enumerate(subjects) if s in f["held_out"] and masks[i].any()]
        assert stored == pytest.approx(np.mean([theirs[i] for i in rows]), abs=1e-6)


def test_a_model_that_trained_on_a_subject_is_refused(trained, phantom):
    one_fold = load_segmenter(trained / "fold-0", device="cpu")  # a single model, not the K-fold set
    cfg = one_fold.members[0].config["subjects"]
    images, _m, subjects = _slices(phantom, one_fold.preprocessor)
    maps = SegmenterMaps(one_fold)
    held = [i for i, s in enumerate(subjects) if s in cfg["held_out"]][:2]
    assert maps.attribute(images[held], [subjects[i] for i in held]).shape == (2, 32, 32)
    leak = next(i for i, s in enumerate(subjects) if s in cfg["train"])
    with pytest.raises(LeakageError, match=f"subject '{subjects[leak]}' was in the training data") as info:
        maps.attribute(images[[held[0], leak]], [subjects[held[0]], subjects[leak]])
    assert "fold-0" in str(info.value) and "\n" not in str(info.value)


def test_folds_that_disagree_with_their_models_are_refused(trained, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained, bad)
    index = json.loads((bad / "config.json").read_text())
    index["folds"][0]["held_out"], index["folds"][1]["held_out"] = index["folds"][1]["held_out"], index["folds"][0]["held_out"]
    (bad / "config.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="held out other subjects"):
        load_segmenter(bad, device="cpu")


def test_classifier_and_segmenter_checkpoints_refuse_each_other(trained):
    import xaiseg
    from xaiseg.training import default_checkpoint

    with pytest.raises(CheckpointError, match="is a segmenter checkpoint .* pass it as --segmenter"):
        xaiseg.load_model(trained, device="cpu")
    with pytest.raises(CheckpointError, match="is a segmenter checkpoint"):
        xaiseg.load_model(trained / "fold-1", device="cpu")
    with pytest.raises(CheckpointError, match="is a classifier checkpoint, not a segmenter"):
        load_segmenter(default_checkpoint(), device="cpu")


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(trained, phantom, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "resumed"
    seen = []

    def stop_in_fold_1(rec):
        seen.append(rec["epoch"])
        if len(seen) == 3:  # fold 0 finished (2 epochs), fold 1 after its first epoch
            raise _Stop

    with pytest.raises(_Stop):
        train_segmenter(_cfg(phantom, out), on_epoch_end=stop_in_fold_1)
    assert not (out / "fold-2").exists()
    with pytest.raises(ConfigError, match=r"different options than the interrupted run: lr 0\.003 in the run, 0\.001 now"):
        train_segmenter(_cfg(phantom, out, resume=True, lr=1e-3))
    with pytest.raises(ConfigError, match=r"different options than the interrupted run: model_kwargs .*\[4, 8, 16\]"):
        train_segmenter(_cfg(phantom, out, resume=True, model_kwargs={**TINY, "channels": (4, 8, 8)}))
    train_segmenter(_cfg(phantom, out, resume=True))
    for k in range(3):
        a, b = load_file(str(out / f"fold-{k}" / "model.safetensors")), load_file(str(trained / f"fold-{k}" / "model.safetensors"))
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    log = (out / "train.log").read_text()
    assert "resumed" in log and "all 3 folds done" in log
