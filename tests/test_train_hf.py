"""`xaiseg train --model hf-vit|hf-swin` (the [hf] extra): a Hugging Face classifier built from a
config trains, saves and rebuilds through load_model; its logits equal a transformers model
built here from the saved config and weights; --init takes a bare Hugging Face state dict;
bad configurations and a missing transformers are one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

import xaiseg
from xaiseg.errors import ConfigError
from xaiseg.training import TrainConfig, train

transformers = pytest.importorskip("transformers")

VIT = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
       "intermediate_size": 32}
SWIN = {"image_size": 32, "patch_size": 2, "window_size": 4, "embed_dim": 8, "depths": [2, 2], "num_heads": [1, 2]}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from xaiseg.data.phantom_writer import write_phantom

    return write_phantom(tmp_path_factory.mktemp("hf") / "ph", subjects=4, slices_per_subject=5, size=32,
                         prevalence=0.5, seed=0, progress=False)


def _cfg(out, data, model, kwargs, **kw) -> TrainConfig:
    base = dict(out=str(out), data=str(data), layout="physionet", model=model, model_kwargs=dict(kwargs), epochs=1,
                batch_size=4, lr=1e-3, val_fraction=0.25, seed=0, device="cpu", progress=False, patience=0, workers=0,
                train_on="disk")
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("model, kwargs, cls", [("hf-vit", VIT, "ViTForImageClassification"),
                                                ("hf-swin", SWIN, "SwinForImageClassification")])
def test_a_hugging_face_classifier_trains_and_rebuilds(tiny_set, tmp_path, model, kwargs, cls):
    from safetensors.torch import load_file

    res = train(_cfg(tmp_path / model, tiny_set, model, kwargs))
    cfg = json.loads((res.out / "config.json").read_text())
    assert cfg["timm_name"] == f"hf:{cls}" and cfg["input_size"] == 32
    loaded = xaiseg.load_model(res.out, device="cpu")
    # independently: the transformers class from the saved kwargs, the weights without the wrapper's prefix
    conf = getattr(transformers, cls.replace("ForImageClassification", "Config"))(
        num_labels=cfg["num_classes"], num_channels=cfg["in_chans"], **cfg["model_kwargs"])
    ref = getattr(transformers, cls)(conf).eval()
    state = {k.removeprefix("net."): v for k, v in load_file(str(res.out / "model.safetensors")).items()}
    ref.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), ref(pixel_values=x).logits)
    maps = xaiseg.get_method("hgi-sam")(loaded.model).attribute(x, target=1)
    assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()


def test_init_takes_a_bare_hugging_face_state_dict(tiny_set, tmp_path):
    torch.manual_seed(3)
    conf = transformers.ViTConfig(num_labels=2, num_channels=3, **VIT)
    src = transformers.ViTForImageClassification(conf)
    torch.save(src.state_dict(), tmp_path / "hf.pt")  # keys vit.…, classifier.… as save_pretrained has them
    res = train(_cfg(tmp_path / "run", tiny_set, "hf-vit", VIT, init=str(tmp_path / "hf.pt"), lr=1e-12))
    got = xaiseg.load_model(res.out, device="cpu").model.net
    a = dict(got.named_parameters())
    b = dict(src.named_parameters())
    assert a.keys() == b.keys()
    for k in a:  # lr 1e-12: one step moves nothing measurable
        torch.testing.assert_close(a[k], b[k], atol=1e-8, rtol=0, msg=k)


@pytest.mark.parametrize("model, kwargs, why", [
    ("hf-swin", {**SWIN, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 1, 1]}, "smaller than window_size"),
    ("hf:BertForSequenceClassification", {}, "unknown Hugging Face model"),
    ("hf-vit", {**VIT, "hidden_act": "nope"}, "cannot build ViTForImageClassification"),
])
def test_bad_hugging_face_models_are_one_line(tiny_set, tmp_path, model, kwargs, why):
    with pytest.raises(ConfigError, match=why) as exc:
        train(_cfg(tmp_path / "bad", tiny_set, model, kwargs))
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="--pretrained loads timm hub weights only"):
        train(_cfg(tmp_path / "pre", tiny_set, "hf-vit", VIT, pretrained=True))


def test_without_transformers_the_error_says_how_to_install(tiny_set, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "xaiseg\[hf\]"'):
        train(_cfg(tmp_path / "none", tiny_set, "hf-vit", VIT))
