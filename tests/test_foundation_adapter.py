"""Swin adapter: structure read from the model, hook/flag hygiene, gradient hygiene, memory."""
from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

import xaiseg
from xaiseg.attribution.attention import attention_pass

from .conftest import tiny_swin


def test_structure_is_read_from_the_model():
    m = tiny_swin(img_size=64, window_size=4, depths=(2, 2, 3, 2))
    a = xaiseg.get_adapter(m)
    assert a.architecture == "swin" and a.input_size == (64, 64) and a.in_chans == 3 and a.num_classes == 2
    assert [s.grid for s in a.stages] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert [len(s.blocks) for s in a.stages] == [2, 2, 3, 2]
    assert [s.merges_input for s in a.stages] == [False, True, True, True]
    # shifts come from the blocks: stage 2's grid equals the window, so timm disables the shift
    assert [b.shift for b in a.stages[0].blocks] == [(0, 0), (2, 2)]
    assert [b.shift for b in a.stages[2].blocks] == [(0, 0)] * 3
    assert a.stages[3].blocks[1].window == (2, 2) and a.stages[3].blocks[1].shift == (0, 0)
    for s in a.stages:
        for b in s.blocks:
            assert b.shift == tuple(b.module.shift_size) and b.window == tuple(b.module.window_size)
    assert a.default_cam_layer == "layers.3.blocks.1.norm1"
    assert a.module("layers.-1.blocks.-1.norm1") is m.layers[3].blocks[1].norm1


@pytest.mark.parametrize(
    "img,window,grids",
    [(56, 7, [(14, 14), (7, 7), (4, 4)]), (96, 12, [(24, 24), (12, 12), (6, 6)]), ((64, 32), 4, [(16, 8), (8, 4), (4, 2)])],
)
def test_windows_7_12_and_non_square(img, window, grids):
    m = tiny_swin(img_size=img, window_size=window, depths=(2, 2, 2), num_heads=(1, 2, 2))
    a = xaiseg.get_adapter(m)
    assert [s.grid for s in a.stages] == grids
    assert a.stages[0].blocks[1].shift == (window // 2, window // 2)


def test_not_a_swin_is_a_clear_type_error():
    with pytest.raises(TypeError, match="not supported.*swin.*SwinTransformer"):
        xaiseg.get_adapter(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="supported architectures"):
        xaiseg.get_method("hgi-sam")(nn.Sequential(nn.Conv2d(3, 2, 3)))


def _hook_count(m: nn.Module) -> int:
    return sum(len(mod._forward_hooks) + len(mod._forward_pre_hooks) + len(mod._backward_hooks) for mod in m.modules())


def test_capture_removes_hooks_and_restores_flags_even_on_exception():
    m = tiny_swin()
    attn = m.layers[0].blocks[0].attn
    attn.fused_attn = True
    a = xaiseg.get_adapter(m)
    before = _hook_count(m)
    with pytest.raises(RuntimeError, match="boom"):
        with a.capture(a.blocks([0, 1])) as cap:
            assert attn.fused_attn is False and _hook_count(m) == before + 4
            m(torch.randn(1, 3, 64, 64))
            assert len(cap.records) == 4
            raise RuntimeError("boom")
    assert _hook_count(m) == before and attn.fused_attn is True


def test_fused_attention_gives_the_same_logits():
    # The capture turns timm's fused path off; both paths must compute the same function.
    m = tiny_swin()
    x = torch.randn(2, 3, 64, 64)
    for blk in m.modules():
        if hasattr(blk, "fused_attn"):
            blk.fused_attn = True
    with torch.no_grad():
        fused = m(x)
    a = xaiseg.get_adapter(m)
    with torch.no_grad(), a.capture(a.blocks()):
        plain = m(x)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)


def test_gradients_leave_parameters_untouched_and_work_under_no_grad():
    m = tiny_swin()
    m.layers[0].blocks[0].attn.qkv.weight.requires_grad_(False)  # a user froze one parameter
    flags = [p.requires_grad for p in m.parameters()]
    a = xaiseg.get_adapter(m)
    with torch.no_grad():
        run = attention_pass(a, torch.randn(2, 3, 64, 64), a.blocks([0, 1, 2]), None, gradients=True)
    assert all(g is not None and g.abs().sum() > 0 for g in run.grads)
    assert all(p.grad is None for p in m.parameters())
    assert [p.requires_grad for p in m.parameters()] == flags
    assert not m.training


def test_gradients_with_every_parameter_frozen():
    m = tiny_swin().requires_grad_(False)
    a = xaiseg.get_adapter(m)
    run = attention_pass(a, torch.randn(1, 3, 64, 64), a.blocks([0]), torch.tensor([1]), gradients=True)
    assert all(g.abs().sum() > 0 for g in run.grads)
    assert all(not p.requires_grad and p.grad is None for p in m.parameters())


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if torch.is_tensor(o))


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc")
def test_repeated_calls_do_not_leak_memory_or_hooks():
    m = tiny_swin(img_size=32, depths=(2, 2), num_heads=(1, 2))
    method = xaiseg.get_method("hgi-sam")(m, stages=(0, 1))
    x = torch.randn(2, 3, 32, 32)
    for _ in range(20):  # warm-up: allocator pools and lazy initialisation settle
        method.attribute(x, target=1)
    tensors, rss, hooks = _live_tensors(), _rss_mb(), _hook_count(m)
    for _ in range(200):
        method.attribute(x, target=1)
    assert _live_tensors() <= tensors  # no graph, capture record or hook closure survives a call
    assert _hook_count(m) == hooks == 0
    assert _rss_mb() - rss < 25.0, "resident memory grew over 200 calls"
