"""HGI-SAM and Swin-SAM against a literal, loop-by-loop reading of docs/design.md §2.

The reference below shares no code with the plugin: it captures Z with its own hook, gets G by a
full ``backward()`` with ``retain_grad`` on a deep copy of the model, and reverses windows and
shifts token by token with index arithmetic.
"""
from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F

import xaiseg

from .conftest import tiny_swin, tiny_swinv2


def _reference(model, x, target, stages, use_grad, brain=None):
    model = copy.deepcopy(model)
    recs = []

    def hook(mod, inp, out):
        z = inp[0]
        if use_grad:
            z.retain_grad()
        recs.append((mod._blk, z, out))

    handles = []
    for si, stage in enumerate(model.layers):
        for blk in stage.blocks:
            blk.attn.fused_attn = False
            blk.attn.softmax._blk = (si, blk)
            handles.append(blk.attn.softmax.register_forward_hook(hook))
    logits = model(x)
    if use_grad:
        logits[torch.arange(x.shape[0]), target].sum().backward()
    for h in handles:
        h.remove()

    B = x.shape[0]
    H_in, W_in = x.shape[-2:]
    final = torch.ones(B, H_in, W_in, dtype=torch.float64)
    for s in stages:
        block_maps = []
        for (si, blk), z, a in recs:
            if si != s:
                continue
            H, W = blk.input_resolution
            wh, ww = blk.window_size
            sh, sw = blk.shift_size
            Hp, Wp = -(-H // wh) * wh, -(-W // ww) * ww
            nwh, nww = Hp // wh, Wp // ww
            heads = a.shape[1]
            g = z.grad if use_grad else None
            m = torch.zeros(B, H, W, dtype=torch.float64)
            for b in range(B):
                for n in range(nwh * nww):
                    idx = b * nwh * nww + n
                    wts = [float(g[idx, h].double().pow(2).sum().sqrt()) if use_grad else 1.0 for h in range(heads)]
                    abar = sum(wts[h] * a[idx, h].double() for h in range(heads)) / heads
                    t = abar.mean(dim=0)  # mean over query rows i, per key token j
                    wy, wx = divmod(n, nww)
                    for j in range(wh * ww):
                        jy, jx = divmod(j, ww)
                        y, xx = wy * wh + jy, wx * ww + jx
                        if y < H and xx < W:  # padded tokens have no place on the grid
                            m[b, (y + sh) % H, (xx + sw) % W] = t[j]
            block_maps.append(m)
        prods = [block_maps[i] * block_maps[i + 1] for i in range(0, len(block_maps) - 1, 2)]
        if len(block_maps) % 2:
            prods.append(block_maps[-1])
        stage_map = sum(prods) / len(prods)
        for b in range(B):
            lo, hi = stage_map[b].min(), stage_map[b].max()
            stage_map[b] = (stage_map[b] - lo) / (hi - lo) if hi > lo else 0.0
        up = F.interpolate(stage_map[:, None], size=(H_in, W_in), mode="bilinear", align_corners=False)[:, 0]
        final = final * up
    if brain is not None:
        final = final * brain.double()
    for b in range(B):
        lo, hi = final[b].min(), final[b].max()
        final[b] = (final[b] - lo) / (hi - lo) if hi > lo else 0.0
    return final.float()


CASES = [
    # img, window, depths, heads: padding (grid 10 with window 4), odd stage (3 blocks),
    # non-square grids, and timm turning the shift off where the window covers the grid.
    dict(img_size=64, window_size=4, depths=(2, 2, 3, 2), num_heads=(1, 2, 2, 4)),
    dict(img_size=40, window_size=4, depths=(2, 2, 2), num_heads=(2, 2, 2)),
    dict(img_size=(64, 32), window_size=4, depths=(2, 2, 2), num_heads=(1, 2, 2)),
]


@pytest.mark.parametrize("cfg", CASES)
@pytest.mark.parametrize("name,use_grad", [("hgi-sam", True), ("swin-sam", False)])
def test_matches_the_literal_recipe(cfg, name, use_grad):
    m = tiny_swin(**cfg)
    a = xaiseg.get_adapter(m)
    stages = tuple(range(len(a.stages))) if name == "swin-sam" else (0, 1, 2)
    x = torch.randn(2, 3, *a.input_size)
    target = torch.tensor([1, 0])
    got = xaiseg.get_method(name)(m).attribute(x, target=target)
    want = _reference(m, x, target, stages, use_grad)
    assert got.shape == want.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert all(p.grad is None for p in m.parameters())


V2_CASES = [  # Swin V2's blocks (cosine attention, continuous position bias, post-norm), same geometry
    dict(img_size=64, window_size=4, depths=(2, 2, 3), num_heads=(1, 2, 2)),
    dict(img_size=40, window_size=4, depths=(2, 2, 2), num_heads=(2, 2, 2)),
]


@pytest.mark.parametrize("cfg", V2_CASES)
@pytest.mark.parametrize("name,use_grad", [("hgi-sam", True), ("swin-sam", False)])
def test_swin_v2_matches_the_same_literal_recipe(cfg, name, use_grad):
    m = tiny_swinv2(**cfg)
    a = xaiseg.get_adapter(m)
    assert a.architecture == "swinv2"
    stages = tuple(range(len(a.stages))) if name == "swin-sam" else (0, 1, 2)
    x = torch.randn(2, 3, *a.input_size)
    target = torch.tensor([1, 0])
    got = xaiseg.get_method(name)(m).attribute(x, target=target)
    want = _reference(m, x, target, stages, use_grad)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert float(got.amax()) == 1.0  # not an empty map (timm's zero post-norms would give one)


def test_stages_option_and_brain_mask():
    m = tiny_swin()
    x = torch.randn(2, 3, 64, 64)
    brain = torch.zeros(2, 64, 64)
    brain[:, 8:56, 12:50] = 1
    got = xaiseg.get_method("hgi-sam")(m, stages=[1, 3]).attribute(x, target=1, brain_mask=brain)
    want = _reference(m, x, torch.tensor([1, 1]), (1, 3), True, brain=brain)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert float(got[brain == 0].abs().max()) == 0.0
    with pytest.raises(ValueError, match="stages"):
        xaiseg.get_method("hgi-sam")(m, stages=[4])
    with pytest.raises(ValueError, match="brain_mask"):
        xaiseg.get_method("hgi-sam")(m).attribute(x, brain_mask=torch.ones(3, 64, 64))


def test_window_7_and_12():
    for img, win in ((56, 7), (96, 12)):
        m = tiny_swin(img_size=img, window_size=win, depths=(2, 2, 2), num_heads=(1, 1, 2))
        x = torch.randn(1, 3, img, img)
        got = xaiseg.get_method("hgi-sam")(m).attribute(x, target=0)
        want = _reference(m, x, torch.tensor([0]), (0, 1, 2), True)
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_batch_equals_one_by_one():
    m = tiny_swin()
    x = torch.randn(4, 3, 64, 64)
    method = xaiseg.get_method("hgi-sam")(m)
    batch = method.attribute(x, target=torch.tensor([1, 0, 1, 1]))
    for i, t in enumerate([1, 0, 1, 1]):
        torch.testing.assert_close(batch[i : i + 1], method.attribute(x[i : i + 1], target=t), atol=1e-5, rtol=1e-4)


def test_constant_maps_become_zeros_never_nan():
    flat = torch.full((2, 5, 5), 3.0)
    flat[1] = torch.nan
    out = xaiseg.minmax_normalize(flat)
    assert torch.equal(out, torch.zeros_like(out))
    # tiny magnitudes are not "constant": fresh models give gradient weights ~1e-13
    torch.testing.assert_close(xaiseg.minmax_normalize(torch.tensor([[1e-13, 3e-13, 2e-13]])), torch.tensor([[0.0, 1.0, 0.5]]))
    m = tiny_swin()
    x = torch.randn(2, 3, 64, 64)
    got = xaiseg.get_method("hgi-sam")(m).attribute(x, target=1, brain_mask=torch.zeros(64, 64))
    assert torch.equal(got, torch.zeros_like(got))


def test_a_stage_without_spatial_extent_is_neutral_not_zero():
    # img 32, patch 4: token grids 8, 4, 2, 1. The 1×1 last stage is constant for every input;
    # as a zero factor it made every default Swin-SAM map (all four stages) empty.
    m = tiny_swin(img_size=32, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2))
    assert tuple(m.layers[3].blocks[0].input_resolution) == (1, 1)
    x = torch.randn(3, 3, 32, 32)
    for name in ("swin-sam", "hgi-sam"):
        all_stages = xaiseg.get_method(name)(m, stages=(0, 1, 2, 3)).attribute(x, target=1)
        without = xaiseg.get_method(name)(m, stages=(0, 1, 2)).attribute(x, target=1)
        assert (all_stages.amax(dim=(1, 2)) == 1).all()
        torch.testing.assert_close(all_stages, without, atol=1e-6, rtol=0)


def test_target_none_explains_the_predicted_class_and_one_logit_models():
    m = tiny_swin(num_classes=3)
    x = torch.randn(2, 3, 64, 64)
    pred = m(x).argmax(1)
    method = xaiseg.get_method("hgi-sam")(m)
    torch.testing.assert_close(method.attribute(x), method.attribute(x, target=pred))
    one = tiny_swin(num_classes=1)
    torch.testing.assert_close(
        xaiseg.get_method("hgi-sam")(one).attribute(x), _reference(one, x, torch.tensor([0, 0]), (0, 1, 2), True),
        atol=2e-5, rtol=1e-4,
    )
    with pytest.raises(ValueError, match="out of range"):
        method.attribute(x, target=3)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        method.attribute(x[0])


def test_gradient_weighting_changes_the_map():
    # Guard against a silently ignored G: with the same attention, HGI-SAM ≠ head mean.
    m = tiny_swin()
    x = torch.randn(1, 3, 64, 64)
    hgi = xaiseg.get_method("hgi-sam")(m).attribute(x, target=1)
    plain = xaiseg.get_method("swin-sam")(m, stages=(0, 1, 2)).attribute(x, target=1)
    assert (hgi - plain).abs().max() > 1e-3


def test_an_untrained_swin_v2_says_why_its_gradient_maps_are_empty():
    """timm starts Swin V2's post-norm weights at zero, which cuts the attention off the logit:
    HGI-SAM's map is then all zero. The method says so (ZeroGradientWarning) instead of
    returning an empty map silently; the same model with the post-norms drawn does not warn."""
    import warnings

    from xaiseg.attribution.attention import ZeroGradientWarning

    torch.manual_seed(0)
    m = timm.create_model("swinv2_tiny_window8_256", pretrained=False, img_size=64, patch_size=4, window_size=4,
                          embed_dim=8, depths=(2, 2), num_heads=(1, 2), num_classes=2).eval()
    x = torch.randn(2, 3, 64, 64)
    with pytest.warns(ZeroGradientWarning, match="untrained timm Swin V2"):
        got = xaiseg.get_method("hgi-sam")(m).attribute(x, target=1)
    assert float(got.abs().amax()) == 0.0  # what the warning explains
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZeroGradientWarning)
        xaiseg.get_method("hgi-sam")(tiny_swinv2()).attribute(torch.randn(2, 3, 64, 64), target=1)


def test_minmax_normalize_equals_a_per_image_numpy_loop_and_leaves_its_input_alone():
    import numpy as np

    torch.manual_seed(0)
    maps = torch.randn(5, 23, 31) * torch.tensor([1.0, 1e-13, 1e5, 1.0, 1.0]).view(5, 1, 1)
    maps[1, 2, 3] = float("nan")
    maps[3] = 7.0  # constant
    maps[4, 0, 0] = float("inf")
    before = maps.clone()
    got = xaiseg.minmax_normalize(maps)
    assert torch.equal(torch.nan_to_num(maps), torch.nan_to_num(before))  # not modified in place
    for i in range(5):
        a = np.nan_to_num(before[i].numpy().astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = np.float32(a.min()), np.float32(a.max())
        want = (a - lo) / (hi - lo) if hi - lo > 1e-6 * max(abs(hi), abs(lo)) else np.zeros_like(a)
        np.testing.assert_array_equal(got[i].numpy(), want.astype(np.float32))
    # inplace: the same numbers, in the caller's float32 buffer; another dtype is never touched
    mine = before.clone()
    out = xaiseg.minmax_normalize(mine, inplace=True)
    assert out.data_ptr() == mine.data_ptr() and torch.equal(out, got)
    half = before.half()
    kept = half.clone()
    torch.testing.assert_close(xaiseg.minmax_normalize(half, inplace=True), xaiseg.minmax_normalize(kept))
    assert torch.equal(torch.nan_to_num(half), torch.nan_to_num(kept))
