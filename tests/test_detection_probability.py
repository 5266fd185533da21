"""P(hemorrhage) from logits, one function for the benchmark and training, checked by hand for
each kind of model (a 1-logit model is the case the two copies used to disagree on)."""
from __future__ import annotations

import math

import pytest
import torch

from xaiseg.training.checkpoint import detection_probability


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_one_logit_model_is_the_sigmoid_of_its_logit():
    z = torch.tensor([[-1.5], [0.0], [2.0]])
    # target_index 1 (the binary default) must not matter: a softmax over one logit is always 1
    for task, target in (("binary", 1), ("binary", 0), ("subtypes", 0)):
        p = detection_probability(z, task, target)
        assert p.tolist() == pytest.approx([_sigmoid(-1.5), 0.5, _sigmoid(2.0)])


def test_binary_two_logits_is_the_softmax_of_the_target():
    z = torch.tensor([[0.3, 1.3], [2.0, -1.0]])
    p = detection_probability(z, "binary", 1)
    assert p.tolist() == pytest.approx([_sigmoid(1.0), _sigmoid(-3.0)])  # softmax of 2 = sigmoid of the difference


def test_multilabel_is_the_sigmoid_of_the_any_logit():
    z = torch.tensor([[0.1, -0.2, 0.3, 0.4, 0.5, 1.5]])
    assert detection_probability(z, "subtypes", 5).tolist() == pytest.approx([_sigmoid(1.5)])
