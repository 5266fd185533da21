"""A misspelt --model-kwargs key for a Hugging Face model is an error, never silently ignored.

transformers' configs keep any unknown keyword as a plain attribute, so ``hiden_size`` (or timm's
``img_size``) would build the default-sized model the user did not ask for; timm models refuse
such a key with a TypeError, and the Hugging Face families must do as much."""
from __future__ import annotations

import pytest

from xaiseg.errors import ConfigError
from xaiseg.training.hf_models import build_hf

transformers = pytest.importorskip("transformers")

VIT = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
       "intermediate_size": 32}
SWIN = {"image_size": 32, "patch_size": 2, "window_size": 4, "embed_dim": 8, "depths": [2, 2], "num_heads": [1, 2]}


@pytest.mark.parametrize("name, good, bad, hint", [
    ("hf-vit", VIT, {"hiden_size": 16}, "hidden_size"),
    ("hf-vit", VIT, {"img_size": 32}, "image_size"),
    ("hf-swin", SWIN, {"window": 4}, "window_size"),
])
def test_unknown_config_key_is_refused_with_a_hint(name, good, bad, hint):
    with pytest.raises(ConfigError, match=rf"unknown .*{list(bad)[0]}.*{hint}") as err:
        build_hf(name, {**good, **bad}, num_classes=2, in_chans=3)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, good", [("hf-vit", VIT), ("hf-swin", SWIN)])
def test_known_config_keys_still_build(name, good):
    net = build_hf(name, {**good, "hidden_dropout_prob": 0.1} if name == "hf-vit" else good, 2, 3).net
    assert net.config.image_size == 32 and net.config.num_labels == 2
