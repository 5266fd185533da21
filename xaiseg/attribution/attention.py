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
        wrt_tensors = [r.outputs if via_probs else r.scores for r in records]
        probs = [t.detach() for t in wrt_tensors] if via_probs and not on_probs else None
        for r in records:
            r.scores = r.outputs = None
        # materialize_grads: a block that does not reach the logit gets zeros, never None
        raw = list(torch.autograd.grad(y.sum(), wrt_tensors, allow_unused=True, materialize_grads=True))
        del wrt_tensors, y
        grads = []
        for i, r in enumerate(records):
            g = raw[i] if probs is None else softmax_backward(raw[i], probs[i])
            raw[i] = None  # type: ignore[call-overload]
            if probs is not None:
                probs[i] = None  # type: ignore[call-overload]
            grads.append(g if reduce_grads is None else reduce_grads(g, r.block))
    _warn_if_all_zero(grads)
    return AttentionPass(logits.detach(), tgt, records, grads)


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
