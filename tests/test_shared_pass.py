"""Attention methods run together share one forward (and one backward) and give, bit for bit,
the maps each gives alone (xaiseg.attribution.shared)."""
from __future__ import annotations

import itertools
import warnings

import pytest
import torch

import xaiseg
from xaiseg import AttentionRequest, attention_pass
from xaiseg.attribution.spec import build_method, method_class, parse_method_spec

from .conftest import tiny_swin, tiny_vit

# The first four of each list (the benchmark's defaults) are run in every combination; each
# variant after them with every other method alone, and all together.
SWIN_METHODS = ["rollout", "grad-rollout", "hgi-sam", "swin-sam", 'grad-rollout{"gradient":"scores"}',
                'hgi-sam{"stages":[1,2]}', 'rollout{"discard_ratio":0.5,"head_fusion":"max"}']
VIT_METHODS = ["rollout", "grad-rollout", "hgi-sam", 'grad-rollout{"gradient":"scores"}', 'hgi-sam{"blocks":[1,2]}',
               'rollout{"residual":0.3}']
TARGETS = [None, 1, [0, 1, 1]]


def _methods(model, texts):
    out = []
    for t in texts:
        spec = parse_method_spec(t)
        out.append(build_method(method_class(spec), spec, model))
    return out


@pytest.fixture(scope="module")
def swin():
    return tiny_swin(img_size=32, window_size=4, depths=(2, 2, 2), num_heads=(2, 2, 4), embed_dim=8, num_classes=3)


@pytest.fixture(scope="module")
def vit():
    return tiny_vit("vit", depth=3, num_classes=3)


class _Counter:
    """Forward calls of the model and torch.autograd.grad calls (the backwards)."""

    def __init__(self, model, monkeypatch):
        self.forwards = self.backwards = 0
        self.handle = model.register_forward_hook(lambda *_: self._fwd())
        real = torch.autograd.grad

        def grad(*args, **kwargs):
            self.backwards += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", grad)

    def _fwd(self):
        self.forwards += 1


def _together(methods, x, target):
    with xaiseg.sharing() as memo:
        for m in methods:
            memo.declare(m, x, target)
        return [m.attribute(x, target=target) for m in methods], memo


def _combinations(n: int, every: int = 4) -> list[tuple[int, ...]]:
    out = [c for k in range(2, every + 1) for c in itertools.combinations(range(every), k)]
    out += [(i, j) for j in range(every, n) for i in range(n) if i < j]
    return out + [tuple(range(n))]


def _expected_passes(model, methods):
    """A capture turns fused attention off in the blocks it records; where the model has it on,
    methods recording different blocks run different forwards (different rounding), so only
    methods recording the same blocks can share: one pass per set of blocks two or more record."""
    if not any(getattr(m, "fused_attn", False) for m in model.modules()):
        return 1
    sets = [frozenset(b.name for b in m.attention_request().blocks) for m in methods]
    return sum(1 for s in set(sets) if sets.count(s) > 1)


@pytest.mark.parametrize("which", ["swin", "vit"])
def test_every_combination_equals_each_alone(which, request):
    model = request.getfixturevalue(which)
    texts = SWIN_METHODS if which == "swin" else VIT_METHODS
    torch.manual_seed(1)
    size = 32
    x = torch.randn(3, 3, size, size)
    methods = _methods(model, texts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for target in TARGETS:
            alone = [m.attribute(x, target=target) for m in methods]
            for combo in _combinations(len(methods)):
                    got, memo = _together([methods[i] for i in combo], x, target)
                    assert memo.passes == _expected_passes(model, [methods[i] for i in combo])
                    for i, g in zip(combo, got):
                        assert torch.equal(g, alone[i]), (which, target, [texts[j] for j in combo], texts[i])


@pytest.mark.parametrize("which", ["swin", "vit"])
def test_one_forward_and_one_backward(which, request, monkeypatch):
    model = request.getfixturevalue(which)
    size = 32
    x = torch.randn(2, 3, size, size)
    # on a ViT, methods recording other blocks run another forward (see _expected_passes)
    methods = _methods(model, SWIN_METHODS if which == "swin" else [t for t in VIT_METHODS if "blocks" not in t])
    count = _Counter(model, monkeypatch)
    try:
        _, memo = _together(methods, x, 1)
    finally:
        count.handle.remove()
    assert (count.forwards, count.backwards) == (1, 1)
    n_grad = sum(m.needs_gradients for m in methods)
    assert memo.stats() == {"passes": 1, "forwards_saved": len(methods) - 1, "backwards_saved": n_grad - 1}
    # alone: one forward each
    count = _Counter(model, monkeypatch)
    try:
        for m in methods:
            m.attribute(x, target=1)
    finally:
        count.handle.remove()
    assert (count.forwards, count.backwards) == (len(methods), n_grad)


def test_groups_by_target_and_inputs(swin):
    x, other = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    a, b = _methods(swin, ["rollout", "hgi-sam"])
    with xaiseg.sharing() as memo:
        memo.declare(a, x, 0)
        memo.declare(b, x, 1)  # another logit: another group, of one → its own pass
        ga, gb = a.attribute(x, target=0), b.attribute(x, target=1)
        assert memo.passes == 0
        memo.declare(a, other, 1)
        memo.declare(b, other, 1)
        assert torch.equal(a.attribute(x, target=1), a.attribute(x, target=1))  # not declared for x: alone
        assert memo.passes == 0
        ha, hb = a.attribute(other, target=1), b.attribute(other, target=1)
        assert memo.passes == 1
    assert torch.equal(ga, a.attribute(x, target=0)) and torch.equal(gb, b.attribute(x, target=1))
    assert torch.equal(ha, a.attribute(other, target=1)) and torch.equal(hb, b.attribute(other, target=1))


def test_seconds_are_split_evenly(swin):
    x = torch.randn(2, 3, 32, 32)
    methods = _methods(swin, ["rollout", "grad-rollout", "hgi-sam"])
    with xaiseg.sharing() as memo:
        keys = [memo.declare(m, x, 1) for m in methods]
        for m in methods:
            m.attribute(x, target=1)
        charged = [memo.charged_seconds(k) for k in keys]
    seconds = memo._of[keys[0]].seconds
    assert seconds > 0
    assert charged[0] == pytest.approx(seconds / 3 - seconds)  # the first call ran the pass
    assert charged[1] == charged[2] == pytest.approx(seconds / 3)
    assert sum(charged) == pytest.approx(0.0, abs=1e-12)


class _ThirdParty(xaiseg.Attribution):
    """A method that does not opt in: it calls attention_pass itself."""

    name = "third-party-mean-attention"
    requires = (xaiseg.ATTENTION,)

    def _attribute(self, inputs, target):
        blocks = self.adapter.blocks([0])
        run = attention_pass(self.adapter, inputs, blocks, target, reduce_probs=lambda p, b: p.mean(dim=(1, 2)))
        t = self.adapter.windows_to_grid(torch.stack([r.probs for r in run.records]), blocks[0]).mean(dim=0)
        return xaiseg.upsample(xaiseg.minmax_normalize(t), tuple(inputs.shape[-2:]))


def test_a_method_that_does_not_opt_in_keeps_working(swin, monkeypatch):
    x = torch.randn(2, 3, 32, 32)
    third = _ThirdParty(swin)
    rollout, hgi = _methods(swin, ["rollout", "hgi-sam"])
    alone = [third.attribute(x), rollout.attribute(x), hgi.attribute(x)]
    count = _Counter(swin, monkeypatch)
    try:
        with xaiseg.sharing() as memo:
            assert memo.declare(third, x) is None
            keys = [memo.declare(m, x) for m in (rollout, hgi)]
            got = [third.attribute(x), rollout.attribute(x), hgi.attribute(x)]
    finally:
        count.handle.remove()
    assert all(torch.equal(g, a) for g, a in zip(got, alone))
    assert count.forwards == 2 and None not in keys  # its own, and the shared one


def test_inference_mode_does_not_share(swin):
    x = torch.randn(1, 3, 32, 32)
    (rollout,) = _methods(swin, ["rollout"])
    with torch.inference_mode(), xaiseg.sharing() as memo:
        assert memo.declare(rollout, x) is None


def test_requests_reject_an_unknown_wrt(swin):
    adapter = xaiseg.get_adapter(swin)
    with pytest.raises(ValueError, match="wrt"):
        AttentionRequest(adapter.blocks([0]), gradients=True, wrt="values")
