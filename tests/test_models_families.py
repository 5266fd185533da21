"""Every method that claims a model family gives maps on it, one batch equal to one by one:
timm ViT (class token), distilled DeiT, ViT with registers and avg pooling, EVA-02, Swin V2, and (with
transformers installed) Hugging Face ViT and Swin. Plus the support rule and the capture's
guarantees (fused attention switched off and restored; a block not captured is an error)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import xaiseg
from xaiseg.attribution.spec import parse_method_spec

from .conftest import hf_models, tiny_swin, tiny_swinv2, tiny_vit

CANDIDATES = ("hgi-sam", "swin-sam", "gradcam", "gradcam:GradCAMPlusPlus", "rollout", "grad-rollout", "saliency",
              'integrated-gradients{"n_steps": 4}', "input-x-gradient", 'occlusion{"sliding_window_shapes": [3, 16, 16], "strides": [3, 8, 8]}',
              "centre-prior", "random")
TIMM = {"vit": lambda: tiny_vit("vit"), "deit": lambda: tiny_vit("deit"), "reg-avg": lambda: tiny_vit("reg"),
        "eva02": lambda: tiny_vit("eva"),
        "swinv2": lambda: tiny_swinv2(img_size=32, depths=(2, 2), num_heads=(1, 2))}
# What each family must get (swin-sam needs Swin's shifted windows; everything else runs on all)
EVERY = {"hgi-sam", "gradcam", "gradcam:GradCAMPlusPlus", "rollout", "grad-rollout", "saliency",
         "integrated-gradients", "input-x-gradient", "occlusion", "centre-prior", "random"}


def _model(family: str) -> torch.nn.Module:
    return hf_models()[family] if family.startswith("hf-") else TIMM[family]()


def _claimed(model) -> list[tuple[str, dict]]:
    specs = [parse_method_spec(t) for t in CANDIDATES]
    return [(s.name, s.options) for s in specs if xaiseg.method_supports(s.name, model)]


@pytest.mark.parametrize("family", [*TIMM, "hf-vit", "hf-swin"])
def test_every_claiming_method_batch_equals_one_by_one(family):
    model = _model(family)
    adapter = xaiseg.get_adapter(model)
    claimed = _claimed(model)
    names = {n for n, _ in claimed}
    swin_like = xaiseg.SHIFTED_WINDOWS in adapter.capabilities
    assert names == (EVERY | {"swin-sam"} if swin_like else EVERY), names
    torch.manual_seed(1)
    x = torch.randn(2, adapter.in_chans, *adapter.input_size)
    target = torch.tensor([1, 0])
    for name, options in claimed:
        method = xaiseg.get_method(name)(model, **options)
        batch = method.attribute(x, target=target)
        assert batch.shape == (2, *adapter.input_size) and torch.isfinite(batch).all(), name
        assert float(batch.amax()) > 0, f"{name} gave an empty map on {family}"
        for i in range(1 if name == "random" else 2):  # random's map of image i is seeded by i
            one = method.attribute(x[i : i + 1], target=int(target[i]))
            torch.testing.assert_close(batch[i : i + 1], one, atol=2e-5, rtol=1e-4, msg=f"{name} on {family}, image {i}")
    assert all(p.grad is None for p in model.parameters())


def test_support_rule_and_one_line_reasons():
    vit = tiny_vit("vit")
    assert "swin-sam" not in xaiseg.methods_for(vit) and "hgi-sam" in xaiseg.methods_for(vit)
    assert xaiseg.support_reason("swin-sam", vit) == "swin-sam needs shifted-windows, which vit models do not have"
    with pytest.raises(TypeError, match="shifted-windows"):
        xaiseg.get_method("swin-sam")(vit)
    # model-agnostic methods take any classifier; attention methods refuse a model they cannot read
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    maps = xaiseg.get_method("saliency")(conv).attribute(torch.randn(2, 3, 16, 16), target=1)
    assert maps.shape == (2, 16, 16)
    assert xaiseg.method_supports("integrated-gradients", conv) and not xaiseg.method_supports("rollout", conv)
    with pytest.raises(TypeError, match="supported architectures: .*vit"):
        xaiseg.get_method("rollout")(conv)
    info = xaiseg.method_info("rollout")
    assert {"swin", "swinv2", "vit"} <= set(info.architectures)


def test_unsupported_vit_pooling_is_refused_clearly():
    import timm

    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=16, depth=1,
                          num_heads=2, global_pool="map")
    with pytest.raises(TypeError, match="global_pool='map'"):
        xaiseg.get_adapter(m)


def test_fused_attention_is_switched_off_for_the_pass_and_restored():
    m = tiny_vit("vit")
    for blk in m.blocks:
        blk.attn.fused_attn = True
    maps = xaiseg.get_method("hgi-sam")(m).attribute(torch.randn(1, 3, 32, 32), target=1)
    assert float(maps.amax()) == 1.0
    assert all(blk.attn.fused_attn is True for blk in m.blocks)
    assert all(not mod._forward_hooks for mod in m.modules())


def test_a_block_whose_attention_is_not_captured_is_an_error():
    m = tiny_vit("vit")
    attn = m.blocks[1].attn

    def no_dropout_call(x, attn_mask=None, is_causal=False):  # an attention that bypasses attn_drop
        B, N, C = x.shape
        q, k, v = attn.qkv(x).reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        a = (q * attn.scale @ k.transpose(-2, -1)).softmax(-1)
        return attn.proj((a @ v).transpose(1, 2).reshape(B, N, C))

    attn.forward = no_dropout_call
    for name in ("rollout", "hgi-sam"):
        with pytest.raises(RuntimeError, match=r"captured 2 attention maps for 3 blocks \(none from blocks.1\)"):
            xaiseg.get_method(name)(m).attribute(torch.randn(1, 3, 32, 32), target=1)


def test_swin_v1_and_v2_share_the_window_geometry():
    v1, v2 = xaiseg.get_adapter(tiny_swin()), xaiseg.get_adapter(tiny_swinv2())
    assert (v1.architecture, v2.architecture) == ("swin", "swinv2")
    for b1, b2 in zip(v1.blocks([0, 1]), v2.blocks([0, 1])):
        assert (b1.grid, b1.window, b1.shift) == (b2.grid, b2.window, b2.shift)
    assert v2.default_cam_layer == "layers.2.blocks.2"


def test_hf_swin_windows_round_trip_in_its_own_order():
    # Hugging Face pads to whole windows before the cyclic shift: check both directions against
    # the model's own partition of a grid of token ids (grid 6 with window 4: padding and shift).
    transformers = pytest.importorskip("transformers")
    from transformers.models.swin.modeling_swin import window_partition

    m = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=24, patch_size=2, embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=4, num_labels=2)).eval()
    a = xaiseg.get_adapter(m)
    blk = a.stages[0].blocks[1]
    assert blk.grid == (12, 12) and blk.shift == (2, 2)
    ids = torch.arange(1, 145, dtype=torch.float32).reshape(1, 12, 12)
    layer = m.swin.encoder.layers[0].blocks[1]
    padded, _ = layer.maybe_pad(ids[..., None], 12, 12)
    want = window_partition(layer.cyclic_shift(padded), 4).reshape(-1, 16)
    got = a.grid_to_windows(ids, blk)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(a.windows_to_grid(got, blk), ids)


def test_the_core_install_never_imports_transformers():
    code = ("import sys, torch, xaiseg\n"
            "from tests.conftest import tiny_swin, tiny_vit\n"
            "for m in (tiny_swin(), tiny_vit('vit')):\n"
            "    xaiseg.get_method('hgi-sam')(m).attribute(torch.randn(1, 3, *xaiseg.get_adapter(m).input_size))\n"
            "xaiseg.methods_for(tiny_vit('vit')); xaiseg.method_info('rollout')\n"
            "try:\n    xaiseg.get_adapter(torch.nn.Linear(2, 2))\nexcept TypeError:\n    pass\n"
            "assert 'transformers' not in sys.modules, 'transformers was imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert res.returncode == 0, res.stderr[-2000:]


def test_softmax_backward_is_autograds_softmax_gradient():
    z = torch.randn(3, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    a = z.softmax(-1)
    g = torch.randn_like(a)
    (want,) = torch.autograd.grad(a, z, g)
    torch.testing.assert_close(xaiseg.softmax_backward(g, a.detach()), want)
    a32 = a.detach().float()
    formula = a32 * (g.float() - (g.float() * a32).sum(-1, keepdim=True))
    torch.testing.assert_close(xaiseg.softmax_backward(g.float(), a32), formula, atol=1e-6, rtol=1e-5)
