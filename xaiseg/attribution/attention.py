"""One forward pass that records attention, optionally followed by ∂y/∂Z for the scores Z.

This is the whole cost of an attention-based explanation: a forward, and (for gradient-weighted
methods) one backward that computes only activation gradients — ``torch.autograd.grad`` with the
captured scores as inputs, so no parameter gradient is formed and no ``.grad`` is left behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

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
    model = adapter.model
    if wrt not in ("scores", "probs"):
        raise ValueError(f"wrt must be 'scores' or 'probs', got {wrt!r}")
    if not gradients:
        with torch.no_grad(), adapter.capture(blocks, reduce_probs=reduce_probs) as cap:
            logits = model(inputs)
        _check_captured(cap.records, blocks)
        _, tgt = select_logits(logits, target)
        return AttentionPass(logits.detach(), tgt, cap.records)

    on_probs = wrt == "probs"
    # An adapter that cannot reach Z (the softmax happens inside a function) gives A; ∂y/∂Z then
    # follows exactly from ∂y/∂A through the softmax Jacobian (see softmax_backward).
    via_probs = on_probs or not adapter.captures_scores
    with torch.enable_grad(), adapter.capture(
        blocks, keep_scores=not via_probs, keep_outputs=via_probs, reduce_probs=reduce_probs
    ) as cap:
        # A leaf that requires grad guarantees a graph even when every parameter is frozen; only
        # the paths to the captured scores are differentiated, never to it or to parameters.
        x = inputs.detach().requires_grad_(True)
        logits = model(x)
        y, tgt = select_logits(logits, target)
        records = cap.records
        _check_captured(records, blocks)
        if via_probs and not on_probs:
            grads = _score_grads_via_probs(y, records, reduce_grads)
        else:
            wrt_tensors = [r.outputs if via_probs else r.scores for r in records]
            for r in records:
                r.scores = r.outputs = None
            # materialize_grads: a block that does not reach the logit gets zeros, never None
            raw = list(torch.autograd.grad(y.sum(), wrt_tensors, allow_unused=True, materialize_grads=True))
            del wrt_tensors, y
            grads = []
            for i, r in enumerate(records):
                g, raw[i] = raw[i], None  # type: ignore[call-overload]
                grads.append(g if reduce_grads is None else reduce_grads(g, r.block))
    _warn_if_all_zero(grads)
    return AttentionPass(logits.detach(), tgt, records, grads)


def _score_grads_via_probs(y: torch.Tensor, records: Sequence[AttentionRecord],
                           reduce_grads: Reducer | None) -> list[torch.Tensor]:
    """∂y/∂Z for adapters that capture A = softmax(Z) only (timm and Hugging Face ViTs).

    Why not ∂y/∂A for every block, then the softmax Jacobian: to reach an earlier block, autograd
    already runs every later block's softmax backward, i.e. computes ∂y/∂Z there. A hook on those
    softmax nodes keeps what autograd computes anyway; only the blocks autograd stops at (the
    earliest one, and any A not made by a plain softmax) get ∂y/∂A and the Jacobian here. On a
    4-block ViT this saves 3 of 4 softmax backwards (~14 % of the whole call).
    """
    caught: dict[int, torch.Tensor] = {}
    handles, ask = [], []
    for i, r in enumerate(records):
        node = r.outputs.grad_fn
        if i > 0 and node is not None and type(node).__name__ == "SoftmaxBackward0":
            def keep(grad_inputs, _grad_outputs, i=i, block=r.block):
                g = grad_inputs[0]
                caught[i] = g if reduce_grads is None else reduce_grads(g, block)
            handles.append(node.register_hook(keep))
        else:
            ask.append(i)
    try:
        wrt = [records[i].outputs for i in ask]
        probs = {i: records[i].outputs.detach() for i in ask}
        like = [(r.outputs.shape, r.outputs.dtype, r.outputs.device) for r in records]
        for r in records:
            r.scores = r.outputs = None
        # materialize_grads: a block that does not reach the logit gets zeros, never None
        raw = torch.autograd.grad(y.sum(), wrt, allow_unused=True, materialize_grads=True)
    finally:
        for h in handles:
            h.remove()
    del wrt, y
    grads: list[torch.Tensor | None] = [None] * len(records)
    for i, g in zip(ask, raw):
        z = softmax_backward(g, probs.pop(i))
        grads[i] = z if reduce_grads is None else reduce_grads(z, records[i].block)
    for i, g in caught.items():
        grads[i] = g
    for i, g in enumerate(grads):
        if g is None:  # its softmax never ran backward: the logit does not depend on that block's Z
            shape, dtype, device = like[i]
            z = torch.zeros(shape, dtype=dtype, device=device)
            grads[i] = z if reduce_grads is None else reduce_grads(z, records[i].block)
    return grads  # type: ignore[return-value]


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
