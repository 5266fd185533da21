"""One forward pass that records attention, optionally followed by ∂y/∂Z for the scores Z.

This is the whole cost of an attention-based explanation: a forward, and (for gradient-weighted
methods) one backward that computes only activation gradients — ``torch.autograd.grad`` with the
captured scores as inputs, so no parameter gradient is formed and no ``.grad`` is left behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..adapters import AttentionRecord, BlockInfo, ModelAdapter
from .targets import select_logits

Reducer = Callable[[torch.Tensor, BlockInfo], torch.Tensor]


@dataclass
class AttentionPass:
    logits: torch.Tensor
    target: torch.Tensor
    records: list[AttentionRecord]
    grads: list[torch.Tensor] | None = None


@dataclass
class AttentionRequest:
    """What one method needs of an attention pass: the ``blocks`` to record, each block's A
    reduced by ``reduce_probs`` and, with ``gradients``, ∂y/∂Z (``wrt="scores"``) or ∂y/∂A
    (``wrt="probs"``) reduced by ``reduce_grads``. Reducers get the detached A (or the
    gradient) and must not modify it in place: requests sharing a pass read the same tensor."""

    blocks: Sequence[BlockInfo]
    gradients: bool = False
    reduce_probs: Reducer | None = None
    reduce_grads: Reducer | None = None
    wrt: str = "scores"

    def __post_init__(self) -> None:
        if self.wrt not in ("scores", "probs"):
            raise ValueError(f"wrt must be 'scores' or 'probs', got {self.wrt!r}")


def attention_pass(
    adapter: ModelAdapter,
    inputs: torch.Tensor,
    blocks: Sequence[BlockInfo],
    target: torch.Tensor | None,
    *,
    gradients: bool = False,
    reduce_probs: Reducer | None = None,
    reduce_grads: Reducer | None = None,
    wrt: str = "scores",
) -> AttentionPass:
    """Run ``adapter.model`` once on ``inputs`` recording attention of ``blocks``.

    With ``gradients``, also returns ∂y/∂Z per block (reduced by ``reduce_grads`` as soon as the
    backward returns, so only the reduced form outlives this call), where y is the target logit
    of each image; with ``wrt="probs"`` the gradient is taken with respect to the attention
    probabilities A = softmax(Z) instead (∂y/∂A, as in Chefer et al. 2021). Works under an
    outer ``torch.no_grad()`` and in eval mode; the model's parameters keep their
    ``requires_grad`` and end with no ``.grad``.
    """
    request = AttentionRequest(blocks, gradients, reduce_probs, reduce_grads, wrt)
    return attention_passes(adapter, inputs, target, [request])[0]


def attention_passes(adapter: ModelAdapter, inputs: torch.Tensor, target: torch.Tensor | None,
                     requests: Sequence[AttentionRequest]) -> list[AttentionPass]:
    """One forward (and, if any request needs gradients, one ``torch.autograd.grad``) serving
    every request: the union of their blocks is captured once, each block's A goes through each
    request's reducer, and the backward asks for the union of the tensors they differentiate
    with respect to (Z for some, A for others). Each returned pass is what
    :func:`attention_pass` gives that request alone, bit for bit (tests/test_shared_pass.py)."""
    blocks, members = _union(adapter, requests)
    own = [{b.name: b for b in r.blocks} for r in requests]  # each request's BlockInfo by block name
    reduce = requests[0].reduce_probs if len(requests) == 1 else _fan_out(requests, members, own)
    grad_reqs = [i for i, r in enumerate(requests) if r.gradients]
    if not grad_reqs:
        with torch.no_grad(), adapter.capture(blocks, reduce_probs=reduce) as cap:
            logits = adapter.model(inputs)
        _check_captured(cap.records, blocks)
        _, tgt = select_logits(logits, target)
        return [AttentionPass(logits.detach(), tgt, recs) for recs in _split(cap.records, requests, members, own)]
    # An adapter that cannot reach Z (the softmax happens inside a function) gives A; ∂y/∂Z then
    # follows exactly from ∂y/∂A through the softmax Jacobian (see softmax_backward).
    via = {i: requests[i].wrt == "probs" or not adapter.captures_scores for i in grad_reqs}
    keep_scores = not all(via.values())
    with torch.enable_grad(), adapter.capture(blocks, keep_scores=keep_scores, keep_outputs=any(via.values()),
                                              reduce_probs=reduce) as cap:
        # A leaf that requires grad guarantees a graph even when every parameter is frozen; only
        # the paths to the captured scores are differentiated, never to it or to parameters.
        x = inputs.detach().requires_grad_(True)
        logits = adapter.model(x)
        y, tgt = select_logits(logits, target)
        _check_captured(cap.records, blocks)
        per_request = _split(cap.records, requests, members, own)
        grads = _backward(y, cap.records, requests, per_request, grad_reqs, via, own)
    out = []
    for i, recs in enumerate(per_request):
        if i in grads:
            _warn_if_all_zero(grads[i])
        out.append(AttentionPass(logits.detach(), tgt, recs, grads.get(i)))
    return out


def _union(adapter: ModelAdapter, requests: Sequence[AttentionRequest]) -> tuple[list[BlockInfo], dict[str, list[int]]]:
    """The blocks to capture (one request: its own list; several: their union in forward
    order) and, per block name, the requests that record it."""
    members: dict[str, list[int]] = {}
    first: dict[str, BlockInfo] = {}
    for i, r in enumerate(requests):
        for b in r.blocks:
            members.setdefault(b.name, []).append(i)
            first.setdefault(b.name, b)
    if len(requests) == 1:
        return list(requests[0].blocks), members
    order = {b.name: k for k, b in enumerate(adapter.blocks())}
    return sorted(first.values(), key=lambda b: order.get(b.name, len(order))), members


def _fan_out(requests: Sequence[AttentionRequest], members: dict[str, list[int]],
             own: Sequence[dict[str, BlockInfo]]) -> Reducer:
    """One capture reducer applying every request's own reducer (with its own BlockInfo)."""

    def reduce(p: torch.Tensor, block: BlockInfo) -> Any:
        return {i: p if requests[i].reduce_probs is None else requests[i].reduce_probs(p, own[i][block.name])
                for i in members[block.name]}

    return reduce


def _split(records: Sequence[AttentionRecord], requests: Sequence[AttentionRequest],
           members: dict[str, list[int]], own: Sequence[dict[str, BlockInfo]]) -> list[list[AttentionRecord]]:
    """Per request, its blocks' records (its own BlockInfo, its own reduced A)."""
    if len(requests) == 1:
        return [list(records)]
    out: list[list[AttentionRecord]] = [[] for _ in requests]
    for rec in records:
        kept = rec.probs
        for i in members[rec.block.name]:
            out[i].append(AttentionRecord(own[i][rec.block.name], probs=kept[i]))  # type: ignore[index]
    return out


def _backward(y: torch.Tensor, records: Sequence[AttentionRecord], requests: Sequence[AttentionRequest],
              per_request: Sequence[Sequence[AttentionRecord]], grad_reqs: Sequence[int],
              via: dict[int, bool], own: Sequence[dict[str, BlockInfo]]) -> dict[int, list[torch.Tensor]]:
    """Every gradient request's reduced gradients from one ``torch.autograd.grad``.

    The tensors asked for are the union of what the requests need: Z of a block (``wrt="scores"``
    on an adapter that captures Z), A of a block (``wrt="probs"``, or ∂y/∂Z through the softmax
    Jacobian where Z cannot be captured, see :func:`_softmax_nodes`). A tensor two requests need
    is asked for once; each request reduces the gradient with its own reducer."""
    by_name = {r.block.name: r for r in records}
    grad_names = {b.name for i in grad_reqs for b in requests[i].blocks}
    earliest = next(r.block.name for r in records if r.block.name in grad_names)
    wanted: dict[tuple[str, str], torch.Tensor] = {}
    via_z = [i for i in grad_reqs if via[i] and requests[i].wrt == "scores"]
    hooked = _softmax_nodes(records, {b.name for i in via_z for b in requests[i].blocks}, earliest)
    probs: dict[str, torch.Tensor] = {}
    for i in grad_reqs:
        for b in requests[i].blocks:
            rec = by_name[b.name]
            if not via[i]:
                wanted.setdefault(("Z", b.name), rec.scores)  # type: ignore[arg-type]
            elif requests[i].wrt == "probs" or b.name not in hooked:
                wanted.setdefault(("A", b.name), rec.outputs)  # type: ignore[arg-type]
                if requests[i].wrt == "scores":
                    probs.setdefault(b.name, rec.outputs.detach())  # type: ignore[union-attr]
    like = {r.block.name: (r.outputs.shape, r.outputs.dtype, r.outputs.device) for r in records if r.outputs is not None}
    caught: dict[tuple[int, str], torch.Tensor] = {}
    handles = [node.register_hook(_keeper(caught, name, [i for i in via_z if name in own[i]], requests, own))
               for name, node in hooked.items()]
    try:
        keys, tensors = list(wanted), list(wanted.values())
        del wanted
        for r in records:
            r.scores = r.outputs = None
        # materialize_grads: a block that does not reach the logit gets zeros, never None
        raw = dict(zip(keys, torch.autograd.grad(y.sum(), tensors, allow_unused=True, materialize_grads=True)))
    finally:
        for h in handles:
            h.remove()
    del tensors, y
    out: dict[int, list[torch.Tensor]] = {}
    for i in grad_reqs:
        req, got = requests[i], []
        for rec in per_request[i]:
            name = rec.block.name
            if (i, name) in caught:
                got.append(caught.pop((i, name)))
                continue
            if not via[i]:
                g = raw[("Z", name)]
            elif req.wrt == "probs":
                g = raw[("A", name)]
            elif name in probs and ("A", name) in raw:
                g = softmax_backward(raw[("A", name)], probs[name])
            else:  # its softmax never ran backward: the logit does not depend on that block's Z
                shape, dtype, device = like[name]
                g = torch.zeros(shape, dtype=dtype, device=device)
            got.append(g if req.reduce_grads is None else req.reduce_grads(g, rec.block))
        out[i] = got
    return out


def _softmax_nodes(records: Sequence[AttentionRecord], names: set[str], earliest: str) -> dict[str, Any]:
    """The autograd softmax nodes whose ∂y/∂Z can be kept as autograd computes it.

    Why not ∂y/∂A for every block, then the softmax Jacobian: to reach an earlier block, autograd
    already runs every later block's softmax backward, i.e. computes ∂y/∂Z there. A hook on those
    softmax nodes keeps what autograd computes anyway; only the block autograd stops at (the
    earliest one asked for) and any A not made by a plain softmax get ∂y/∂A and the Jacobian.
    On a 4-block ViT this saves 3 of 4 softmax backwards (~14 % of the whole call)."""
    out = {}
    for r in records:
        node = None if r.outputs is None else r.outputs.grad_fn
        if r.block.name in names and r.block.name != earliest and node is not None \
                and type(node).__name__ == "SoftmaxBackward0":
            out[r.block.name] = node
    return out


def _keeper(caught: dict, name: str, reqs: Sequence[int], requests: Sequence[AttentionRequest],
            own: Sequence[dict[str, BlockInfo]]) -> Callable:
    blocks = {i: own[i][name] for i in reqs}

    def keep(grad_inputs: tuple, _grad_outputs: tuple) -> None:
        g = grad_inputs[0]
        for i in reqs:
            red = requests[i].reduce_grads
            caught[(i, name)] = g if red is None else red(g, blocks[i])

    return keep


def softmax_backward(grad_probs: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """∂y/∂Z from ∂y/∂A for A = softmax(Z) over the last axis: A ⊙ (∂y/∂A − Σ_j ∂y/∂A_j A_j),
    the softmax's Jacobian-vector product. Computed by the kernel autograd's softmax backward
    uses (one fused pass, ~2.5× faster than the three tensor operations; what a hooked Z
    would have received), the formula where that kernel is missing."""
    kernel = getattr(torch, "_softmax_backward_data", None)
    if kernel is not None and grad_probs.dtype == probs.dtype:
        try:
            return kernel(grad_probs, probs, -1, probs.dtype)
        except (RuntimeError, TypeError):  # another signature in some torch version
            pass
    return probs * (grad_probs - (grad_probs * probs).sum(dim=-1, keepdim=True))


class ZeroGradientWarning(UserWarning):
    """The target logit does not depend on any captured attention: gradient maps are empty."""


def _warn_if_all_zero(grads: Sequence[torch.Tensor]) -> None:
    """A gradient-weighted map of all zeros looks like "nothing found"; say why instead."""
    if grads and not any(bool(torch.any(g)) for g in grads):
        import warnings

        warnings.warn(
            "the gradient of the target logit with respect to every captured attention map is exactly zero, so "
            "gradient-weighted maps are empty; an untrained timm Swin V2 does this (timm starts its post-norm "
            "weights at zero): explain a trained model, or use a gradient-free method such as rollout",
            ZeroGradientWarning, stacklevel=3)


def _check_captured(records: Sequence[AttentionRecord], blocks: Sequence[BlockInfo]) -> None:
    """Every block recorded exactly once, in forward order: a silent gap would be a wrong map."""
    got = [r.block.name for r in records]
    want = [b.name for b in blocks]
    if got != want:
        missing = [n for n in want if n not in got]
        raise RuntimeError(
            f"captured {len(got)} attention maps for {len(want)} blocks"
            + (f" (none from {', '.join(missing[:3])})" if missing else "")
            + "; is the model running its blocks more than once (gradient checkpointing), skipping some, "
            "or using an attention the adapter does not hook (fused attention)?"
        )
