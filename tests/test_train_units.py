"""Small pieces of the training code, each checked against an independent computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xaiseg.training.curriculum import Curriculum, lr_factor
from xaiseg.training.evaluation import detection_metrics, roc_auc
from xaiseg.training.losses import binary_targets, focal_bce_with_logits, task_loss
from xaiseg.training.presets import PRESETS, build_model, parse_model_kwargs, resolve_model
from xaiseg.training.sources import balanced_weights, epoch_order, subject_split
from xaiseg.errors import ConfigError


def test_roc_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # rounding makes many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_detection_metrics_by_hand():
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1])
    m = detection_metrics(y, p)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # positives ranked above negatives in 4 of the 6 (pos, neg) pairs
    assert m["auc"] == pytest.approx(4 / 6)
    # an unknown (NaN) label is left out, not counted as positive
    m2 = detection_metrics(np.array([1, 1, 1, 0, 0, np.nan]), np.append(p, 0.05))
    assert m2 == pytest.approx(m)
    assert roc_auc(np.array([0, 1, np.nan, 0]), np.array([0.1, 0.9, 0.0, 0.2])) == 1.0


def test_losses():
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    labels = torch.tensor([[0, 0, 0, 0, 0, 0.0], [0, 1, 0, 0, 0, 1.0]])
    assert binary_targets(labels).tolist() == [0, 1]
    # binary = one softmax cross-entropy over the two logits
    expect = -(F.log_softmax(logits, -1)[0, 0] + F.log_softmax(logits, -1)[1, 1]) / 2
    assert task_loss(logits, labels, "binary").item() == pytest.approx(expect.item(), rel=1e-6)
    x = torch.tensor([[2.0, -1.0, 0.0, 0.5, -3.0, 1.0]])
    t = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    assert focal_bce_with_logits(x, t, 0.0).item() == pytest.approx(F.binary_cross_entropy_with_logits(x, t).item(), rel=1e-6)
    # focal, one element by hand: p = sigmoid(2), target 1 -> -(1 - p)^2 log p
    p = 1 / (1 + math.exp(-2.0))
    got = focal_bce_with_logits(torch.tensor([2.0]), torch.tensor([1.0]), 2.0).item()
    assert got == pytest.approx(-((1 - p) ** 2) * math.log(p), rel=1e-6)


def test_lr_schedule_and_curriculum():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, min_ratio=0.0) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(100, 100, 10, min_ratio=0.01) == pytest.approx(0.01)
    c = Curriculum(3.0, 0.25, 0.5)
    assert c.scale(0, 100) == 3.0 and c.scale(24, 100) == 3.0
    assert c.scale(50, 100) == pytest.approx(2.0)  # half-way through the shrink
    assert c.scale(75, 100) == 1.0 and c.scale(99, 100) == 1.0
    assert c.end_step(100) == 75
    assert c.realism(0, 100) == 0.0 and c.realism(50, 100) == pytest.approx(0.5) and c.realism(80, 100) == 1.0
    assert Curriculum().realism(0, 10) == 1.0
    assert Curriculum().scale(0, 10) == 1.0 and not Curriculum(3.0).active
    with pytest.raises(ValueError):
        Curriculum(0.5)


def test_subject_split_and_sampling():
    subjects = [f"s{i // 4}" for i in range(40)]  # 10 subjects x 4 slices
    tr, va = subject_split(subjects, 0.2, seed=1)
    assert len(va) == 2 and not (tr & va) and tr | va == set(subjects)
    assert subject_split(subjects, 0.2, seed=1) == (tr, va)
    y = np.array([1] * 10 + [0] * 30)
    w = balanced_weights(y)
    assert w[y == 1].sum() == pytest.approx(0.5) and w.sum() == pytest.approx(1.0)
    draws = epoch_order(40, 0, 0, w)
    assert len(draws) == 40
    assert sorted(epoch_order(40, 3, 0)) == list(range(40))
    assert (epoch_order(40, 3, 0) == epoch_order(40, 3, 0)).all()


def test_presets_and_model_names():
    name, kw = resolve_model("tiny", {"embed_dim": 16})
    assert name.startswith("swin") and kw["embed_dim"] == 16 and kw["window_size"] == PRESETS["tiny"].kwargs["window_size"]
    assert resolve_model("paper")[0] == "swin_base_patch4_window12_384"
    assert resolve_model("swin_tiny_patch4_window7_224", {})[0] == "swin_tiny_patch4_window7_224"
    with pytest.raises(ConfigError, match="unknown model"):
        resolve_model("resnet50")
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_model_kwargs("{embed_dim: 3")
    with pytest.raises(ConfigError, match="cannot build"):
        build_model("swin_tiny_patch4_window7_224", {"no_such_option": 1}, 2)


@pytest.mark.parametrize("preset", ["tiny", "tiny-224"])
def test_tiny_presets_have_hgi_sam_block_pairs(preset):
    # HGI-SAM multiplies (regular, shifted) block pairs in stages 0-2: each needs >= 2 blocks
    # and a real shift in the second block.
    import xaiseg

    name, kw = resolve_model(preset)
    model = build_model(name, kw, 2)
    stages = xaiseg.get_adapter(model).stages
    assert len(stages) >= 3
    for st in stages[:3]:
        assert len(st.blocks) >= 2 and not st.blocks[0].shifted and st.blocks[1].shifted


def test_tiny_224_gives_hgi_sam_a_14_by_14_third_stage():
    import torch

    name, kw = resolve_model("tiny-224")
    model = build_model(name, kw, 2).eval()
    seen = []
    model.layers[2].register_forward_hook(lambda mod, inp, out: seen.append(tuple(out.shape)))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    assert seen == [(1, 224 // 16, 224 // 16, 4 * 32)]  # NHWC after patch 4 and two merges: 14 x 14


def test_defaults_follow_the_data(tmp_path):
    from xaiseg.data.phantom_writer import write_phantom
    from xaiseg.training import TrainConfig
    from xaiseg.training.presets import default_model_name

    written = write_phantom(tmp_path / "ph", subjects=2, slices_per_subject=2, size=32, seed=0, progress=False)
    assert TrainConfig(out="o").epochs == 30  # the stream: 3000 steps
    assert TrainConfig(out="o", data=str(written)).epochs == 30  # trained on the stream of its generator
    assert TrainConfig(out="o", data=str(written), train_on="disk").epochs == 10
    assert TrainConfig(out="o", data=str(tmp_path / "ct")).epochs == 10
    assert TrainConfig(out="o", epochs=3).epochs == 3 and TrainConfig(out="o").lr == 5e-4
    assert (default_model_name("cpu", True), default_model_name("cpu", False)) == ("tiny-224", "tiny")
    assert default_model_name("cuda:1", True) == default_model_name("cuda", False) == "paper"


def test_volume_buffered_keeps_the_draws_and_visits_each_volume_in_one_stretch():
    from xaiseg.training.sources import volume_buffered

    subject_of = [f"s{i // 6}" for i in range(60)]  # 10 subjects x 6 slices
    w = np.ones(60) / 60
    for order in (epoch_order(60, 2, 0), epoch_order(60, 2, 0, w)):
        got = volume_buffered(order, subject_of, buffer=3, epoch=2, seed=0)
        assert sorted(got.tolist()) == sorted(order.tolist())  # the same multiset of draws
        subjects = [subject_of[p] for p in got]
        # once a subject's draws start, they all come within its group of 3 subjects: with the
        # data set's cache of 3 volumes, every volume is decoded once per epoch
        cache, decodes = [], 0
        for s in subjects:
            if s not in cache:
                decodes += 1
                cache = (cache + [s])[-3:]
        assert decodes == len(set(subjects))
        assert len({subjects[i] for i in range(min(18, len(subjects)))}) > 1  # batches mix subjects
    again = volume_buffered(epoch_order(60, 2, 0), subject_of, 3, 2, 0)
    assert (again == volume_buffered(epoch_order(60, 2, 0), subject_of, 3, 2, 0)).all()  # seeded
    assert not (again == volume_buffered(epoch_order(60, 3, 0), subject_of, 3, 3, 0)).all()
