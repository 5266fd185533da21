"""Rollout, grad-rollout, HGI-SAM's ViT extension and Grad-CAM on timm ViTs (and EVA-02) against
independent computations written here: attention recomputed by hand from each block's qkv (EVA-02:
from the q, k its fused path passes to scaled_dot_product_attention; Z and A kept with
retain_grad, gradients from one full backward), dense N×N products, literal loops, and the
grad-cam package called directly with a hand-written reshape."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xaiseg

from .conftest import tiny_vit as _fresh_vit


def tiny_vit(kind):
    """A fresh tiny ViT attends almost uniformly, so its maps are min–max of differences near
    float32 rounding; sharper attention (qkv weights × 4) keeps the comparison meaningful."""
    m = _fresh_vit(kind)
    with torch.no_grad():
        for blk in m.blocks:
            blk.attn.qkv.weight.mul_(4.0)
    return m


def _recorded(model, x, target=None):
    """(logits, [(Z, A)] per block) with Z, A retaining gradients, attention written out by hand."""
    if type(model).__name__ == "Eva":
        return _recorded_through_sdpa(model, x, target)
    model = copy.deepcopy(model)
    recs = []

    def attention(attn):
        def forward(h, attn_mask=None, is_causal=False):
            B, N, C = h.shape
            q, k, v = attn.qkv(h).reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
            z = (q * attn.scale) @ k.transpose(-2, -1)
            a = z.softmax(dim=-1)
            if z.requires_grad:
                z.retain_grad(), a.retain_grad()
            recs.append((z, a))
            return attn.proj((a @ v).transpose(1, 2).reshape(B, N, -1))

        return forward

    for blk in model.blocks:
        blk.attn.forward = attention(blk.attn)
    logits = model(x)
    if target is not None:
        logits[torch.arange(x.shape[0]), target].sum().backward()
    return logits, recs


def _recorded_through_sdpa(model, x, target=None):
    """EVA-02's attention (rotary embeddings, q/k norms) recorded where it ends: its fused path
    calls F.scaled_dot_product_attention(q, k, v), replaced here by softmax(q kᵀ / √d) written
    out, so Z and A come from q and k as the model made them, never from the path xaiseg hooks."""
    model = copy.deepcopy(model)
    recs = []
    real = F.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **_):
        assert attn_mask is None and not is_causal
        z = (q @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5
        a = z.softmax(dim=-1)
        if z.requires_grad:
            z.retain_grad(), a.retain_grad()
        recs.append((z, a))
        return a @ v

    for blk in model.blocks:
        blk.attn.fused_attn = True
    F.scaled_dot_product_attention = sdpa
    try:
        logits = model(x)
    finally:
        F.scaled_dot_product_attention = real
    assert len(recs) == len(model.blocks)
    if target is not None:
        logits[torch.arange(x.shape[0]), target].sum().backward()
    return logits, recs


def _readout(kind, n, prefix):
    row = torch.zeros(n, dtype=torch.float64)
    if kind in ("reg", "eva"):  # avg pooling: uniform over the patch tokens
        row[prefix:] = 1.0 / (n - prefix)
    elif kind == "deit":  # the head averages class and distillation tokens
        row[0] = row[1] = 0.5
    else:
        row[0] = 1.0
    return row


def _to_map(rows, prefix, grid, size, final_minmax=False):
    """(B, N) relevance -> per-image min–max of the patch tokens on the grid, upsampled (and
    min–max again: HGI-SAM's last step; rollout ends on the upsampling)."""
    m = rows[:, prefix:].reshape(-1, *grid)
    out = []
    for b in range(m.shape[0]):
        t = m[b] - m[b].min()
        t = t / t.max() if t.max() > 0 else t * 0
        out.append(t)
    up = F.interpolate(torch.stack(out)[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    if not final_minmax:
        return up
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    return (up - lo) / (hi - lo)


KINDS = ["vit", "deit", "reg", "eva"]


@pytest.mark.parametrize("kind", KINDS)
def test_rollout_is_the_dense_product(kind):
    m = tiny_vit(kind)
    a = xaiseg.get_adapter(m)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, recs = _recorded(m, x)
    n = recs[0][1].shape[-1]
    eye = torch.eye(n, dtype=torch.float64)
    want_rows = []
    for b in range(2):
        R = eye.clone()
        for _, att in recs:  # Abnar & Zuidema: R = Π_b (0.5 I + 0.5 mean_h A_b), last block leftmost
            R = (0.5 * eye + 0.5 * att[b].double().mean(0)) @ R
        want_rows.append(_readout(kind, n, a.prefix_tokens) @ R)
    want = _to_map(torch.stack(want_rows), a.prefix_tokens, a.grid, (32, 32))
    got = xaiseg.get_method("rollout")(m).attribute(x, target=1)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_grad_rollout_is_chefers_generic_rule(kind):
    m = tiny_vit(kind)
    a = xaiseg.get_adapter(m)
    x = torch.randn(2, 3, 32, 32)
    target = torch.tensor([1, 0])
    _, recs = _recorded(m, x, target)
    n = recs[0][1].shape[-1]
    rows = []
    for b in range(2):
        R = torch.eye(n, dtype=torch.float64)
        for _, att in recs:  # Chefer et al. 2021: R <- R + mean_h((dy/dA ⊙ A)^+) · R, forward order
            cam = (att.grad[b].double() * att[b].double()).clamp(min=0).mean(0)
            R = R + cam @ R
        rows.append(_readout(kind, n, a.prefix_tokens) @ R)
    want = _to_map(torch.stack(rows), a.prefix_tokens, a.grid, (32, 32))
    got = xaiseg.get_method("grad-rollout")(m).attribute(x, target=target)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def _hgi_literal(m, x, target, blocks=None):
    a = xaiseg.get_adapter(m)
    _, recs = _recorded(m, x, target)
    chosen = range(len(recs)) if blocks is None else blocks
    p = a.prefix_tokens
    B = x.shape[0]
    maps = torch.zeros(B, *a.grid, dtype=torch.float64)
    for b in range(B):
        acc = torch.zeros(a.grid, dtype=torch.float64)
        for k in chosen:
            z, att = recs[k]
            heads = att.shape[1]
            w = [float(z.grad[b, h].double().pow(2).sum().sqrt()) for h in range(heads)]  # ||∂y/∂Z_h||_F
            for j in range(p, att.shape[-1]):  # keys: patch tokens only
                s = 0.0
                for h in range(heads):
                    s += w[h] * float(att[b, h, :, j].detach().double().mean())  # mean over every query row
                gy, gx = divmod(j - p, a.grid[1])
                acc[gy, gx] += s / heads
        maps[b] = acc / len(chosen)
    flat = maps.reshape(B, -1)
    return _to_map(torch.cat([torch.zeros(B, p, dtype=torch.float64), flat], 1), p, a.grid, tuple(x.shape[-2:]), True)


@pytest.mark.parametrize("kind", KINDS)
def test_hgi_sam_vit_extension_is_the_literal_loop(kind):
    m = tiny_vit(kind)
    x = torch.randn(2, 3, 32, 32)
    target = torch.tensor([1, 0])
    got = xaiseg.get_method("hgi-sam")(m).attribute(x, target=target)
    torch.testing.assert_close(got, _hgi_literal(m, x, target), atol=2e-5, rtol=1e-4)
    some = xaiseg.get_method("hgi-sam")(m, blocks=[0, -1]).attribute(x, target=target)
    torch.testing.assert_close(some, _hgi_literal(m, x, target, blocks=[0, 2]), atol=2e-5, rtol=1e-4)
    assert all(p.grad is None for p in m.parameters())


def test_hgi_sam_blocks_option_is_checked():
    m = tiny_vit("vit")
    with pytest.raises(xaiseg.errors.ConfigError, match="blocks must be"):
        xaiseg.get_method("hgi-sam")(m, blocks=[3])
    from .conftest import tiny_swin

    with pytest.raises(xaiseg.errors.ConfigError, match="on Swin choose stages"):
        xaiseg.get_method("hgi-sam")(tiny_swin(), blocks=[0])


@pytest.mark.parametrize("kind", KINDS)
def test_gradcam_equals_the_package_with_a_hand_written_reshape(kind):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    m = tiny_vit(kind)
    prefix = m.num_prefix_tokens
    x = torch.randn(2, 3, 32, 32)

    def reshape(t):  # (B, prefix + 16, C) -> (B, C, 4, 4), prefix tokens dropped
        return t[:, prefix:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    ref_model = copy.deepcopy(m)
    cam = GradCAM(ref_model, [ref_model.blocks[-1].norm1], reshape_transform=reshape)
    want = cam(x, [ClassifierOutputTarget(1)] * 2)  # the package resizes with cv2 (bilinear)
    got = xaiseg.get_method("gradcam")(m).attribute(x, target=1)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
