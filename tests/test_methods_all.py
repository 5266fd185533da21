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
