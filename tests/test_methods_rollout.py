"""Rollout and grad-rollout against a dense reference built here from scratch.

The reference captures attention with its own hooks, builds every block's full T×T token matrix
by index arithmetic (window partition in the shifted frame, timm's bottom/right padding, the
cyclic shift) and every patch merging's T_s×T_{s-1} matrix, multiplies them densely and compares
with the method, which never forms those matrices.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xaiseg
from xaiseg.errors import ConfigError

from .conftest import tiny_swin


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _capture(model, x, target, grad_wrt=None):
    """Per block: (block module, A (B·nW, h, N, N)) and optionally the gradient of the target
    logit w.r.t. A or Z, with hooks of our own (not the framework's capture)."""
    blocks = [blk for st in model.layers for blk in st.blocks]
    store, handles, flags = [], [], []
    for blk in blocks:
        flags.append(blk.attn.fused_attn)
        blk.attn.fused_attn = False
        handles.append(blk.attn.softmax.register_forward_hook(lambda m, a, o: store.append((a[0], o))))
    try:
        with torch.enable_grad():
            logits = model(x.requires_grad_(grad_wrt is not None))
            probs = [o.detach() for _, o in store]
            grads = None
            if grad_wrt is not None:
                y = logits[torch.arange(len(x)), target].sum()
                wrt = [o if grad_wrt == "probs" else z for z, o in store]
                grads = [g.detach() for g in torch.autograd.grad(y, wrt)]
    finally:
        for h, blk, f in zip(handles, blocks, flags):
            h.remove()
            blk.attn.fused_attn = f
    return blocks, probs, grads


def _dense_block(fused: np.ndarray, blk, batch: int, thin=None) -> np.ndarray:
    """(B·nW, N, N) window matrices → (B, T, T) on the image-frame grid; ``thin`` (discard,
    renormalise) applies to each window's matrix between its real tokens, padding dropped first."""
    H, W = _pair(blk.input_resolution)
    wh, ww = _pair(blk.window_size)
    sh, sw = _pair(blk.shift_size)
    Hp, Wp = -(-H // wh) * wh, -(-W // ww) * ww
    nwh, nww = Hp // wh, Wp // ww
    # tok[w, i]: image-frame token index of local position i of window w (-1: padding).
    wy, wx, i = np.meshgrid(np.arange(nwh), np.arange(nww), np.arange(wh * ww), indexing="ij")
    ys, xs = wy * wh + i // ww, wx * ww + i % ww  # position in the shifted (and padded) frame
    valid = (ys < H) & (xs < W)
    tok = np.where(valid, ((ys + sh) % H) * W + (xs + sw) % W, -1).reshape(nwh * nww, wh * ww)
    out = np.zeros((batch, H * W, H * W))
    fused = fused.reshape(batch, nwh * nww, wh * ww, wh * ww)
    for w in range(nwh * nww):
        ok = tok[w] >= 0
        t = tok[w][ok]
        sub = fused[:, w][:, ok][:, :, ok]
        out[:, t[:, None], t[None, :]] = sub if thin is None else thin(sub)
    return out


def _dense_merge(big: tuple[int, int], small: tuple[int, int]) -> np.ndarray:
    """T_small × T_big: each merged token spreads 1/4 to each of its 2×2 parents."""
    M = np.zeros((small[0] * small[1], big[0] * big[1]))
    for y in range(small[0]):
        for x in range(small[1]):
            for dy in (0, 1):
                for dx in (0, 1):
                    py, px = 2 * y + dy, 2 * x + dx
                    if py < big[0] and px < big[1]:
                        M[y * small[1] + x, py * big[1] + px] = 0.25
    return M


def _discard(m: np.ndarray, ratio: float) -> np.ndarray:
    m = m.copy()
    n2 = m.shape[-1] * m.shape[-2]
    k = int(ratio * n2)
    if k == 0:
        return m
    flat = m.reshape(m.shape[0], -1)
    cut = np.sort(flat, axis=1)[:, k - 1 : k]
    flat[flat <= cut] = 0.0
    return flat.reshape(m.shape)


def _thin(m: np.ndarray, discard: float, renorm: bool) -> np.ndarray:
    m = _discard(m, discard)
    if renorm:
        s_ = m.sum(-1, keepdims=True)
        m = np.where(s_ > 0, m / np.where(s_ > 0, s_, 1), 0)
    return m


def dense_rollout(model, x, *, fusion="mean", discard=0.0, a=0.5, first=0, last=None, renorm=False,
                  grad_wrt=None, target=None) -> torch.Tensor:
    B = x.shape[0]
    if target is None:
        with torch.no_grad():
            target = model(x).argmax(1)
    blocks, probs, grads = _capture(model, x.clone(), target, grad_wrt)
    nstages = len(model.layers)
    last = nstages - 1 if last is None else last
    stage_of = [s for s, st in enumerate(model.layers) for _ in st.blocks]
    grids = [_pair(st.blocks[0].input_resolution) for st in model.layers]
    r = None
    for s in range(last, first - 1, -1):
        T = grids[s][0] * grids[s][1]
        if r is None:
            r = np.full((B, 1, T), 1.0 / T)
        else:
            r = r @ _dense_merge(grids[s], grids[s + 1])
        idx = [k for k, st in enumerate(stage_of) if st == s]
        for k in reversed(idx):
            A = probs[k].double().numpy()
            if grad_wrt is None:
                fused = {"mean": A.mean(1), "max": A.max(1), "min": A.min(1)}[fusion]
            else:
                fused = np.clip(grads[k].double().numpy() * A, 0, None).mean(1)
            D = _dense_block(fused, blocks[k], B, thin=lambda m: _thin(m, discard, renorm))
            R = a * np.eye(T)[None] + (1 - a) * D
            r = r @ R
    g = grids[first]
    r = r[:, 0].reshape(B, *g)
    lo, hi = r.min(axis=(1, 2), keepdims=True), r.max(axis=(1, 2), keepdims=True)
    grid_map = torch.from_numpy((r - lo) / (hi - lo)).float()
    return F.interpolate(grid_map[:, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]


@pytest.fixture(scope="module")
def model():
    # Stage grids 16×16 and 8×8 with windows of 4 and shifts of 2, then a 4×4 grid (window = grid,
    # no shift); several heads so that mean/max/min differ.
    return tiny_swin(img_size=64, window_size=4, depths=(2, 2, 2), num_heads=(2, 2, 4), embed_dim=8)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def test_the_reference_model_has_shifted_and_unshifted_blocks(model):
    shifts = [_pair(b.shift_size) for st in model.layers for b in st.blocks]
    assert (0, 0) in shifts and (2, 2) in shifts


@pytest.mark.parametrize("fusion,discard", [("mean", 0.0), ("max", 0.0), ("min", 0.0), ("mean", 0.5), ("max", 0.9)])
def test_rollout_equals_dense_product(model, x, fusion, discard):
    ours = xaiseg.get_method("rollout")(model, head_fusion=fusion, discard_ratio=discard).attribute(x)
    ref = dense_rollout(model, x, fusion=fusion, discard=discard)
    assert ours.shape == (2, 64, 64)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert ours.amax(dim=(1, 2)).min() > 0.5  # a real map, not all zeros


@pytest.mark.parametrize("kw", [dict(residual=0.2, renormalize=True), dict(first_stage=1), dict(last_stage=1), dict(first_stage=1, last_stage=1)])
def test_rollout_options_equal_dense_product(model, x, kw):
    ours = xaiseg.get_method("rollout")(model, **kw).attribute(x)
    ref = dense_rollout(model, x, a=kw.get("residual", 0.5), renorm=kw.get("renormalize", False),
                        first=kw.get("first_stage", 0), last=kw.get("last_stage"))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_rollout_non_square_grid_and_padded_windows():
    # (64, 32): 16×8 → 8×4 → 4×2 grids. img 48 with window 8: a 12×12 grid padded to 16×16,
    # shift 4, then a 6×6 grid with window = grid. img 40 with window 5: 10×10 → 5×5 → an odd
    # grid merged with timm's padding into 3×3.
    for m in (tiny_swin(img_size=(64, 32), window_size=4, depths=(2, 2, 2), num_heads=(2, 2, 2)),
              tiny_swin(img_size=40, window_size=5, depths=(2, 2, 2), num_heads=(1, 2, 2)),
              tiny_swin(img_size=48, window_size=8, depths=(2, 2), num_heads=(2, 2))):
        torch.manual_seed(2)
        xx = torch.randn(2, 3, *_pair(m.patch_embed.img_size))
        ours = xaiseg.get_method("rollout")(m, discard_ratio=0.3).attribute(xx)
        ref = dense_rollout(m, xx, discard=0.3)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
        # renormalised rows sum to 1 over real tokens: padding drops out before the rescaling
        ours = xaiseg.get_method("rollout")(m, discard_ratio=0.2, renormalize=True).attribute(xx)
        ref = dense_rollout(m, xx, discard=0.2, renorm=True)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert _pair(m.layers[0].blocks[1].shift_size) == (4, 4) and _pair(m.layers[0].blocks[1].window_size) == (8, 8)


@pytest.mark.parametrize("wrt", ["probs", "scores"])
def test_grad_rollout_equals_dense_product(model, x, wrt):
    target = torch.tensor([1, 0])
    ours = xaiseg.get_method("grad-rollout")(model, gradient=wrt).attribute(x, target=target)
    ref = dense_rollout(model, x, grad_wrt=wrt, target=target)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert not any(p.grad is not None for p in model.parameters())


def test_grad_rollout_with_discard(model, x):
    ours = xaiseg.get_method("grad-rollout")(model, discard_ratio=0.5).attribute(x, target=1)
    ref = dense_rollout(model, x, grad_wrt="probs", discard=0.5, target=torch.tensor([1, 1]))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_rollout_memory_is_linear_in_tokens(model, x):
    # What a block keeps is the fused (B·nW, N, N) window matrix: B·T·N numbers, not T².
    method = xaiseg.get_method("rollout")(model)
    blocks = method.adapter.blocks(method.stages)
    mats = method._window_matrices(xaiseg.shared_pass(method, x, None))
    for blk, m in zip(blocks, mats):
        T = blk.grid[0] * blk.grid[1]
        assert m.shape == (2 * blk.num_windows, blk.window_tokens, blk.window_tokens)
        assert m.numel() == 2 * T * blk.window_tokens


def test_bad_options_are_config_errors(model):
    R = xaiseg.get_method("rollout")
    for kw in (dict(head_fusion="median"), dict(discard_ratio=1.0), dict(first_stage=2, last_stage=1), dict(residual=2)):
        with pytest.raises(ConfigError):
            R(model, **kw)
    with pytest.raises(ConfigError):
        xaiseg.get_method("grad-rollout")(model, gradient="weights")


def test_adapter_grid_window_round_trip_and_merge_split():
    m = tiny_swin(img_size=48, window_size=8, depths=(2, 2), num_heads=(1, 1))  # 12×12 padded to 16×16
    ad = xaiseg.get_adapter(m)
    v = torch.randn(2, 12, 12)
    for blk in ad.stages[0].blocks:
        w = ad.grid_to_windows(v, blk)
        assert w.shape == (2 * 4, 64)
        torch.testing.assert_close(ad.windows_to_grid(w, blk), v)
        assert w.abs().sum() == pytest.approx(v.abs().sum().item(), rel=1e-6)  # padding holds zeros
    up = ad.split_merged(torch.ones(2, 6, 6), ad.stages[1])
    assert up.shape == (2, 12, 12) and torch.all(up == 0.25)
