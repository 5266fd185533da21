"""One options path: names and annotated types checked once, when a method is built (before
any work), for xaiseg's own options and for those a family forwards to captum or grad-cam."""
from __future__ import annotations

import pytest
import torch

import xaiseg
from xaiseg.errors import ConfigError
from xaiseg.attribution.spec import build_method, method_class, parse_method_spec

from .conftest import tiny_swin


def _build(text, model):
    spec = parse_method_spec(text)
    return build_method(method_class(spec), spec, model)


def test_a_misspelt_captum_option_lists_captums_real_options():
    with pytest.raises(ConfigError) as err:
        _build('integrated-gradients{"n_stepz": 3}', tiny_swin())
    msg = str(err.value)
    assert "n_stepz" in msg and "n_steps" in msg and "internal_batch_size" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="unknown option.*eigen_smooth.*aug_smooth"):
        _build('gradcam{"layr": "x"}', tiny_swin())


@pytest.mark.parametrize("text,match", [
    ('integrated-gradients{"n_steps": 0}', "n_steps of integrated-gradients must be at least 1, got 0"),
    ('integrated-gradients{"n_steps": "3"}', "n_steps of integrated-gradients must be int, got '3'"),
    ('integrated-gradients{"method": "simpson"}', "method of integrated-gradients must be one of"),
    ('occlusion{"perturbations_per_eval": 1.5}', "perturbations_per_eval of occlusion must be int"),
    ('rollout{"residual": "half"}', "residual of rollout must be float, got 'half'"),
    ('hgi-sam{"stages": 2}', "stages of hgi-sam must be"),
    ('gradcam{"batch_size": 0}', "batch_size of gradcam must be at least 1"),
    ('random{"seed": true}', "seed of random must be int, got True"),
])
def test_wrong_types_and_values_fail_at_construction(text, match):
    # at construction, i.e. before any image is explained (captum asserts n_steps only then)
    with pytest.raises(ConfigError, match=match) as err:
        _build(text, tiny_swin())
    assert "\n" not in str(err.value)


def test_right_types_pass_and_json_lists_become_tuples():
    m = tiny_swin()
    occ = _build('occlusion{"sliding_window_shapes": [3, 16, 16], "strides": [3, 16, 16]}', m)
    assert occ.attr_kwargs["sliding_window_shapes"] == (3, 16, 16)
    assert occ.attribute(torch.randn(1, 3, 64, 64), target=1).shape == (1, 64, 64)
    assert _build('integrated-gradients{"n_steps": 2, "internal_batch_size": null}', m).attr_kwargs["n_steps"] == 2
    assert _build('rollout{"residual": 1}', m).residual == 1.0  # an int is a fine float


def test_accepted_options_and_variants_live_on_the_base_class():
    ig = xaiseg.get_method("integrated-gradients")
    assert {"n_steps", "method", "baselines", "multiply_by_inputs"} <= set(ig.accepted_options())
    assert xaiseg.get_method("rollout").accepted_options()[:2] == ["residual", "head_fusion"]
    assert xaiseg.get_method("gradcam:ScoreCAM").variants() == []
    with pytest.raises(xaiseg.UnknownNameError, match="has no variants"):
        xaiseg.get_method("rollout:Other")


def test_non_finite_inputs_are_refused_in_one_line():
    m = tiny_swin()
    x = torch.randn(2, 3, 64, 64)
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[1, 0, 3, 3] = bad
        for name in ("hgi-sam", "saliency", "centre-prior"):
            with pytest.raises(ValueError, match="NaN or infinite") as err:
                xaiseg.get_method(name)(m).attribute(y, target=1)
            assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["saliency", "hgi-sam"])
def test_a_loaded_checkpoint_instead_of_its_model_is_one_clear_error(name):
    import xaiseg
    from xaiseg.training import default_checkpoint

    loaded = xaiseg.load_model(default_checkpoint())
    with pytest.raises(TypeError, match=r"expected a torch.nn.Module, got LoadedModel; pass its .model"):
        xaiseg.get_method(name)(loaded)
