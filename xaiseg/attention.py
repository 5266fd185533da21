"""One forward pass that records attention, optionally followed by ∂y/∂Z for the scores Z.

This is the whole cost of an attention-based explanation: a forward, and (for gradient-weighted
methods) one backward that computes only activation gradients — ``torch.autograd.grad`` with the
captured scores as inputs, so no parameter gradient is formed and no ``.grad`` is left behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .adapters import AttentionRecord, BlockInfo, ModelAdapter
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
        _, tgt = select_logits(logits, target)
        return AttentionPass(logits.detach(), tgt, cap.records)

    on_probs = wrt == "probs"
    with torch.enable_grad(), adapter.capture(
        blocks, keep_scores=not on_probs, keep_outputs=on_probs, reduce_probs=reduce_probs
    ) as cap:
        # A leaf that requires grad guarantees a graph even when every parameter is frozen; only
        # the paths to the captured scores are differentiated, never to it or to parameters.
        x = inputs.detach().requires_grad_(True)
        logits = model(x)
        y, tgt = select_logits(logits, target)
        records = cap.records
        if len(records) != len(blocks):
            raise RuntimeError(
                f"captured {len(records)} attention maps for {len(blocks)} blocks; is the model "
                "running its blocks more than once (gradient checkpointing) or skipping some?"
            )
        scores = [r.outputs if on_probs else r.scores for r in records]
        for r in records:
            r.scores = r.outputs = None
        # materialize_grads: a block that does not reach the logit gets zeros, never None
        raw = torch.autograd.grad(y.sum(), scores, allow_unused=True, materialize_grads=True)
        del scores, y
        grads = [g if reduce_grads is None else reduce_grads(g, r.block) for r, g in zip(records, raw)]
        del raw
    return AttentionPass(logits.detach(), tgt, records, grads)
