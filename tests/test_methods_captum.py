"""captum methods against gradients computed by hand and against captum called directly."""
from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients, Occlusion

import xaiseg
from xaiseg.errors import ConfigError

from .conftest import tiny_swin


@pytest.fixture(scope="module")
def model():
    return tiny_swin(img_size=32, window_size=4, depths=(2, 2), num_heads=(1, 2), embed_dim=8)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(7)
    return torch.randn(2, 3, 32, 32)


def _by_hand(attr: torch.Tensor) -> torch.Tensor:
    m = attr.abs().sum(dim=1)
    lo = m.amin(dim=(1, 2), keepdim=True)
    hi = m.amax(dim=(1, 2), keepdim=True)
    return (m - lo) / (hi - lo)


def test_saliency_is_the_absolute_input_gradient(model, x):
    target = torch.tensor([1, 0])
    xx = x.clone().requires_grad_(True)
    y = model(xx)[torch.arange(2), target].sum()
    (g,) = torch.autograd.grad(y, xx)
    ours = xaiseg.get_method("saliency")(model).attribute(x, target=target)
    torch.testing.assert_close(ours, _by_hand(g), atol=1e-6, rtol=0)
    assert not any(p.grad is not None for p in model.parameters())


def test_predicted_class_is_the_default_target(model, x):
    with torch.no_grad():
        pred = model(x).argmax(1)
    a = xaiseg.get_method("captum:InputXGradient")(model).attribute(x)
    b = xaiseg.get_method("captum:InputXGradient")(model).attribute(x, target=pred)
    torch.testing.assert_close(a, b)


def test_integrated_gradients_passes_options_through(model, x):
    base = torch.full_like(x, 0.5)
    ref = IntegratedGradients(model).attribute(x, baselines=base, target=1, n_steps=8, method="riemann_trapezoid")
    ours = xaiseg.get_method("integrated-gradients")(
        model, baselines=base, n_steps=8, method="riemann_trapezoid", internal_batch_size=5
    ).attribute(x, target=1)
    torch.testing.assert_close(ours, _by_hand(ref), atol=1e-5, rtol=0)


def test_occlusion_defaults_follow_the_input_size(model, x):
    # An eighth of the shorter side (4 px) as the window, half of it as the stride.
    x = x[:1]
    ref = Occlusion(model).attribute(x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), target=1,
                                   perturbations_per_eval=32)
    ours = xaiseg.get_method("occlusion")(model).attribute(x, target=1)
    torch.testing.assert_close(ours, _by_hand(ref), atol=1e-5, rtol=0)
    mine = xaiseg.get_method("captum:Occlusion")(model, sliding_window_shapes=(3, 8, 8), strides=8).attribute(x, target=1)
    ref8 = Occlusion(model).attribute(x, sliding_window_shapes=(3, 8, 8), strides=8, target=1, perturbations_per_eval=16)
    torch.testing.assert_close(mine, _by_hand(ref8), atol=1e-5, rtol=0)


def test_feature_ablation_default_mask_is_square_blocks(model, x):
    maps = xaiseg.get_method("captum:FeatureAblation")(model).attribute(x[:1], target=1)
    # Every 4×4 block (an eighth of the side) is one feature, so the map is constant on it.
    blocks = maps[0].reshape(8, 4, 8, 4)
    assert torch.equal(blocks.amax(dim=(1, 3)), blocks.amin(dim=(1, 3)))


def test_unusable_captum_classes_say_why(model):
    with pytest.raises(ConfigError, match="nn.ReLU"):
        xaiseg.get_method("captum:GuidedBackprop")(model)
    with pytest.raises(ConfigError, match="not supported"):
        xaiseg.get_method("captum:DeepLift")
    with pytest.raises(ConfigError, match="no attribution class"):
        xaiseg.get_method("captum:Nope")
    with pytest.raises(ConfigError, match="n_steps"):
        xaiseg.get_method("saliency")(model, n_steps=3)
