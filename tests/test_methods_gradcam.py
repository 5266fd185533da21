"""gradcam against the grad-cam package called directly, for both timm output layouts."""
from __future__ import annotations

import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import xaiseg
from xaiseg.errors import ConfigError

from .conftest import tiny_swin


@pytest.fixture(scope="module")
def model():
    # Non-square input so that a transposed reshape (H and W swapped) cannot pass.
    return tiny_swin(img_size=(64, 32), window_size=4, depths=(2, 2, 2), num_heads=(1, 2, 2), embed_dim=8)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(3)
    return torch.randn(3, 3, 64, 32)


def _nhwc(t):  # (B, H, W, C): the output of a block's norm1 in timm
    return t.permute(0, 3, 1, 2)


def _tokens(grid):  # (B, H·W, C): norm2 / mlp outputs inside a block
    return lambda t: t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *grid)


def _package(model, cls, layer, reshape, x, targets):
    cam = cls(model, [layer], reshape_transform=reshape)
    try:
        return torch.from_numpy(cam(x, [ClassifierOutputTarget(t) for t in targets]))
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)


@pytest.mark.parametrize(
    "path,layout",
    [
        ("layers.2.blocks.1.norm1", "nhwc"),  # the default (published) layer: 4×2 grid here
        ("layers.1.blocks.0.norm1", "nhwc"),  # 8×4 grid, a shifted-stage block
        ("layers.1.blocks.1.norm2", "tokens"),
        ("layers.0.blocks.1.mlp", "tokens"),  # 16×8 grid
    ],
)
def test_gradcam_equals_the_package(model, x, path, layout):
    adapter = xaiseg.get_adapter(model)
    layer = adapter.module(path)
    with torch.no_grad():
        feats = {}
        h = layer.register_forward_hook(lambda m, a, o: feats.setdefault("o", o))
        model(x)
        h.remove()
    grid = adapter.stages[int(path.split(".")[1])].grid
    assert feats["o"].dim() == (4 if layout == "nhwc" else 3)
    reshape = _nhwc if layout == "nhwc" else _tokens(grid)
    targets = [1, 0, 1]
    ref = _package(model, GradCAM, layer, reshape, x, targets)
    kw = {} if path == adapter.default_cam_layer else {"layer": path}
    ours = xaiseg.get_method("gradcam")(model, **kw).attribute(x, target=torch.tensor(targets))
    assert ours.shape == ref.shape == (3, 64, 32)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0)
    assert ours.amax() > 0.99


@pytest.mark.parametrize("cls", [GradCAMPlusPlus, LayerCAM])
def test_family_members_equal_the_package(model, x, cls):
    adapter = xaiseg.get_adapter(model)
    ref = _package(model, cls, adapter.module(adapter.default_cam_layer), _nhwc, x, [1, 1, 1])
    ours = xaiseg.get_method(f"gradcam:{cls.__name__}")(model).attribute(x, target=1)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0)


def test_model_left_as_it_was(model, x):
    model.train()
    model.head.fc.weight.grad = torch.ones_like(model.head.fc.weight)
    model.layers[0].blocks[0].norm1.weight.requires_grad_(False)
    try:
        with pytest.warns(UserWarning, match="training mode"):  # the fixture has drop-path
            xaiseg.get_method("gradcam")(model).attribute(x)
        assert model.training and all(m.training for m in model.modules())
        assert torch.equal(model.head.fc.weight.grad, torch.ones_like(model.head.fc.weight))
        assert [n for n, p in model.named_parameters() if p.grad is not None] == ["head.fc.weight"]
        assert not model.layers[0].blocks[0].norm1.weight.requires_grad
        assert sum(p.requires_grad for p in model.parameters()) == len(list(model.parameters())) - 1
    finally:
        model.eval()
        model.head.fc.weight.grad = None
        model.layers[0].blocks[0].norm1.weight.requires_grad_(True)
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())


def test_works_under_no_grad_and_predicted_class(model, x):
    with torch.no_grad():
        a = xaiseg.get_method("gradcam")(model).attribute(x)
        pred = model(x).argmax(1)
    b = xaiseg.get_method("gradcam")(model).attribute(x, target=pred)
    torch.testing.assert_close(a, b)


def test_unsupported_and_unknown_cams_and_layers_are_clear(model):
    with pytest.raises(ConfigError, match="FullGrad"):
        xaiseg.get_method("gradcam:FullGrad")
    with pytest.raises(ConfigError, match="no CAM class"):
        xaiseg.get_method("gradcam:NoSuchCAM")
    with pytest.raises(ConfigError, match="no module"):
        xaiseg.get_method("gradcam")(model, layer="layers.9.blocks.0")
    with pytest.raises(ConfigError, match="unknown option"):
        xaiseg.get_method("gradcam")(model, colour="red")
    with pytest.raises(ValueError, match="out of range"):
        xaiseg.get_method("gradcam")(model).attribute(torch.zeros(1, 3, 64, 32), target=5)
