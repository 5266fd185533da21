"""Every registered method on a tiny Swin: a valid map, batch-consistent, model left clean."""
from __future__ import annotations

import warnings

import pytest
import torch

import xaiseg

from .conftest import tiny_swin

NOT_PER_IMAGE = {"random"}  # seeded by (seed, position in the batch) by design
# Short names and the bare family name are the same classes as a family member: checked once.
ALIASES = {"captum": "captum:Saliency", "saliency": "captum:Saliency", "occlusion": "captum:Occlusion",
           "integrated-gradients": "captum:IntegratedGradients", "input-x-gradient": "captum:InputXGradient"}


@pytest.fixture(scope="module")
def model():
    # Grids 8×8 (window 4, shift 2), 4×4 (window 4, no shift), 2×2; three stages for hgi-sam.
    return tiny_swin(img_size=32, window_size=4, depths=(2, 2, 2), num_heads=(1, 2, 2), embed_dim=8)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(5)
    return torch.randn(2, 3, 32, 32)


def _clean(model):
    hooks = [n for n, m in model.named_modules()
             if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks]
    grads = [n for n, p in model.named_parameters() if p.grad is not None]
    return hooks, grads


def test_every_builtin_is_listed():
    names = set(xaiseg.list_methods())
    for n in ("hgi-sam", "swin-sam", "gradcam", "gradcam:GradCAMPlusPlus", "gradcam:ScoreCAM", "rollout",
              "grad-rollout", "captum:IntegratedGradients", "captum:Occlusion", "saliency",
              "integrated-gradients", "centre-prior", "random"):
        assert n in names


def test_aliases_are_the_family_members():
    for short, full in ALIASES.items():
        a, b = xaiseg.get_method(short), xaiseg.get_method(full)
        family = xaiseg.get_method("captum")
        assert issubclass(a, family) and issubclass(b, family) and a.captum_name == b.captum_name


@pytest.mark.parametrize("name", [n for n in xaiseg.list_methods() if n not in ALIASES])
def test_method_gives_valid_batch_consistent_maps(model, x, name):
    cls = xaiseg.get_method(name)
    info = xaiseg.method_info(name)
    assert info.description and isinstance(info.needs_gradients, bool)
    method = cls(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        maps = method.attribute(x, target=torch.tensor([1, 0]))
    assert maps.shape == (2, 32, 32) and maps.dtype == torch.float32 and maps.device == x.device
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert (maps.amax(dim=(1, 2)) > 0.5).all(), "a map with no signal on a random input"
    if name not in NOT_PER_IMAGE:
        alone = method.attribute(x[1:], target=0)
        torch.testing.assert_close(maps[1:], alone, atol=1e-4, rtol=0)
    assert _clean(model) == ([], [])
    with torch.no_grad():
        assert model(x).shape == (2, 2)


def test_inputs_the_model_cannot_take_are_one_line_errors(model, x):
    method = xaiseg.get_method("hgi-sam")(model)
    with pytest.raises(ValueError, match=r"inputs are 16×16 but the model was built for 32×32"):
        method.attribute(torch.randn(1, 3, 16, 16), target=1)
    with pytest.raises(ValueError, match="inputs have 1 channels but the model takes 3"):
        method.attribute(torch.randn(1, 1, 32, 32), target=1)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        method.attribute(x, target=1)
    with torch.inference_mode():  # a forward-only method runs there
        assert xaiseg.get_method("swin-sam")(model).attribute(x).shape == (2, 32, 32)
    with pytest.raises(TypeError, match="torch.bool"):
        method.attribute(x, target=torch.tensor([True, False]))


def test_targets_as_numpy_ints_lists_and_arrays_equal_a_tensor(model, x):
    import numpy as np

    method = xaiseg.get_method("hgi-sam")(model)
    ref = method.attribute(x, target=torch.tensor([1, 0]))
    for t in ([1, 0], (1, 0), np.array([1, 0])):
        torch.testing.assert_close(method.attribute(x, target=t), ref, atol=0, rtol=0)
    torch.testing.assert_close(method.attribute(x, target=np.int64(1)), method.attribute(x, target=1), atol=0, rtol=0)


def test_a_model_with_random_layers_in_training_mode_warns():
    m = tiny_swin(img_size=32, window_size=4, depths=(2, 2), num_heads=(1, 2), drop_path_rate=0.2)
    xx = torch.randn(1, 3, 32, 32)
    m.train()
    with pytest.warns(UserWarning, match=r"training mode.*model.eval\(\)"):
        xaiseg.get_method("swin-sam")(m).attribute(xx)
    m.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xaiseg.get_method("swin-sam")(m).attribute(xx)
        # a model without dropout or drop-path is deterministic in either mode: no warning
        xaiseg.get_method("centre-prior")(torch.nn.Identity().train()).attribute(xx)


def test_hgi_sam_defaults_to_the_stages_a_small_model_has():
    m = tiny_swin(img_size=32, window_size=4, depths=(2, 2), num_heads=(1, 2))
    method = xaiseg.get_method("hgi-sam")(m)
    assert list(method.stages) == [0, 1]
    assert method.attribute(torch.randn(1, 3, 32, 32), target=1).shape == (1, 32, 32)
