"""xaiseg.segmenters without training: presets, loss, probabilities, folds and the leakage guard.

Loss and probabilities are checked against formulas written out here in numpy; the guard
against hand-built fold models.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from xaiseg.errors import ConfigError, DataError
from xaiseg.segmenters import (SEGMENTER_PRESETS, LeakageError, build_segmenter, lesion_probability, plan_folds,
                               resolve_segmenter, segmentation_loss)
from xaiseg.segmenters.folds import check_disjoint, unseen_models


@pytest.mark.parametrize("name", ["unet", "swin-unetr"])
def test_cpu_presets_build_2d_segmenters(name):
    preset, kwargs = resolve_segmenter(name)
    assert preset.architecture == name and preset.input_size == 128
    torch.manual_seed(0)
    model = build_segmenter(preset.architecture, kwargs, in_channels=3, out_channels=1, input_size=64).eval()
    with torch.no_grad():
        y = model(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, 1, 64, 64)


def test_paper_presets_are_the_published_sizes():
    from monai.networks.nets import SwinUNETR, UNet

    unet, swin = SEGMENTER_PRESETS["unet-paper"], SEGMENTER_PRESETS["swin-unetr-paper"]
    assert unet.input_size == swin.input_size == 384 and round(384 * unet.resize_ratio) == 422
    assert tuple(unet.kwargs["channels"]) == (64, 128, 256, 512, 1024)
    assert swin.kwargs["feature_size"] == 48 and tuple(swin.kwargs["num_heads"]) == (3, 6, 12, 24)
    with torch.device("meta"):  # MONAI 1.6 accepts the names; no 26 M weights allocated (SwinUNETR needs real ones)
        big_unet = build_segmenter("unet", unet.kwargs, 3, 1, 384)
    built = build_segmenter("swin-unetr", swin.kwargs, 3, 1, 384), big_unet
    assert isinstance(built[0], SwinUNETR) and isinstance(built[1], UNet)
    assert 20e6 < sum(p.numel() for p in built[0].parameters()) < 30e6
    assert 20e6 < sum(p.numel() for p in built[1].parameters()) < 30e6


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: resolve_segmenter("resnet"), "unknown segmenter 'resnet'"),
        (lambda: build_segmenter("unet", SEGMENTER_PRESETS["unet"].kwargs, 3, 1, 60), "not a multiple of 8"),
        (lambda: build_segmenter("swin-unetr", SEGMENTER_PRESETS["swin-unetr"].kwargs, 3, 1, 48), "not a multiple of 32"),
        (lambda: build_segmenter("unet", {"channels": (4, 8), "strides": (2,), "bogus": 1}, 3, 1, 32), "cannot build a unet"),
        (lambda: build_segmenter("unet", SEGMENTER_PRESETS["unet"].kwargs, 3, 3, 64), "1 (sigmoid) or 2 (softmax)"),
    ],
)
def test_bad_segmenter_specs_are_one_line_config_errors(call, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        call()
    assert "\n" not in str(info.value)


def test_lesion_probability_sigmoid_and_softmax():
    rng = np.random.default_rng(0)
    one = rng.normal(size=(2, 1, 4, 5)).astype(np.float32)
    two = rng.normal(size=(2, 2, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(lesion_probability(torch.from_numpy(one)).numpy(), 1 / (1 + np.exp(-one[:, 0])), rtol=1e-6)
    e = np.exp(two)
    np.testing.assert_allclose(lesion_probability(torch.from_numpy(two)).numpy(), e[:, 1] / e.sum(1), rtol=1e-6)


def test_one_channel_loss_is_batch_dice_plus_bce():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 1, 6, 6))
    target = (rng.random((3, 1, 6, 6)) < 0.3).astype(np.float64)
    target[1] = 0  # an empty slice: pooled over the batch it has no Dice of its own
    p = 1 / (1 + np.exp(-logits))
    dice_loss = 1 - (2 * (p * target).sum() + 1e-5) / (p.sum() + target.sum() + 1e-5)
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean()
    got = segmentation_loss(1)(torch.from_numpy(logits), torch.from_numpy(target))
    assert float(got) == pytest.approx(dice_loss + bce, rel=1e-6)


def test_two_channel_loss_scores_the_lesion_channel():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 2, 5, 5))
    target = (rng.random((2, 1, 5, 5)) < 0.4).astype(np.float64)
    e = np.exp(logits)
    p = e / e.sum(1, keepdims=True)
    dice_loss = 1 - (2 * (p[:, 1] * target[:, 0]).sum() + 1e-5) / (p[:, 1].sum() + target.sum() + 1e-5)
    ce = -np.where(target[:, 0] > 0, np.log(p[:, 1]), np.log(p[:, 0])).mean()
    got = segmentation_loss(2)(torch.from_numpy(logits), torch.from_numpy(target))
    assert float(got) == pytest.approx(dice_loss + ce, rel=1e-6)


def test_plan_folds_partition_subjects_and_spread_positives():
    subjects = [f"{i:03d}" for i in range(10)]
    positive = subjects[:6]
    folds = plan_folds(subjects, positive, 3, seed=0)
    flat = [s for f in folds for s in f]
    assert sorted(flat) == subjects and len(set(flat)) == 10
    assert sorted(sum(s in positive for s in f) for f in folds) == [2, 2, 2]
    assert plan_folds(subjects, positive, 3, seed=0) == folds
    with pytest.raises(DataError, match="needs at least 3 subjects with hemorrhage, the data has 2"):
        plan_folds(subjects, positive[:2], 3, seed=0)
    with pytest.raises(DataError, match="'003' is in folds 0 and 1"):
        check_disjoint([["001", "003"], ["003"]])


@dataclass
class _Fold:
    label: str
    seen: frozenset


def test_guard_picks_the_model_that_held_the_subject_out_and_refuses_a_leak():
    models = [_Fold("run/fold-0", frozenset({"b", "c"})), _Fold("run/fold-1", frozenset({"a", "c"}))]
    assert unseen_models(models, "a") == [0]
    assert unseen_models(models, "b") == [1]
    assert unseen_models(models, "zz") == [0, 1]  # a subject no model saw: any (all) of them
    with pytest.raises(LeakageError, match="subject 'c' was in the training data of every model") as info:
        unseen_models(models, "c")
    assert "run/fold-0, run/fold-1" in str(info.value) and "\n" not in str(info.value)
