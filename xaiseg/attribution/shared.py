"""One attention pass per batch for every attention method explaining the same logit.

A method opts in by returning an :class:`~.attention.AttentionRequest` from
:meth:`Attribution.attention_request` and building its map, in ``_attribute``, from the pass
:func:`shared_pass` gives it. Whoever runs several methods on one batch (the
benchmark's maps pass) opens :func:`sharing` and :meth:`SharedPasses.declare`\\ s each
(method, inputs, target) before calling any of them; the first opted-in method called then runs
:func:`~.attention.attention_passes` once for every declared method of its group — same model,
same input tensor, same target, same changes to the forward (:func:`_forward_changes`) — and each later one takes its part of that pass. Outside
:func:`sharing`, or for a method that did not opt in or was not declared, nothing changes: the
method runs its own pass.

Seconds: the pass is timed once; :meth:`SharedPasses.charged_seconds` tells a caller timing each
method around its call how to split it evenly between the methods that shared it.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Hashable, Iterator

import torch

from .attention import AttentionPass, AttentionRequest, attention_passes
from .targets import normalize_target

if TYPE_CHECKING:
    from .base import Attribution

_ACTIVE: ContextVar["SharedPasses | None"] = ContextVar("xaiseg_shared_passes", default=None)


@dataclass
class _Group:
    """The declared methods that one pass serves."""

    inputs: torch.Tensor
    target: torch.Tensor | None
    keys: list[Hashable] = field(default_factory=list)
    methods: list[Any] = field(default_factory=list)
    requests: list[AttentionRequest] = field(default_factory=list)
    results: dict[Hashable, AttentionPass] | None = None
    seconds: float = 0.0
    ran_by: Hashable = None


def _target_key(target: torch.Tensor | None) -> Hashable:
    return None if target is None else tuple(int(t) for t in target.tolist())


def _forward_changes(method: "Attribution", request: AttentionRequest) -> frozenset:
    """What a capture of the request's blocks changes in the model's forward (e.g. a ViT
    block's fused attention turned off, which rounds differently). Only requests that change
    the same things run the same forward, so only they share a pass: bit-identical maps."""
    switches = method.adapter.attention_switches(request.blocks)
    return frozenset((id(obj), attr) for obj, attr, value in switches if getattr(obj, attr, None) != value)


class SharedPasses:
    """The per-batch memo: declared methods, grouped by (model, input tensor, target)."""

    def __init__(self) -> None:
        self._groups: dict[Hashable, _Group] = {}
        self._of: dict[Hashable, _Group] = {}
        self.passes = 0  # shared passes run (each one forward, and one backward if any member needs it)
        self.forwards_saved = 0
        self.backwards_saved = 0

    @staticmethod
    def key(method: "Attribution", inputs: torch.Tensor, target: torch.Tensor | None) -> Hashable:
        return (id(method), id(inputs), _target_key(target))

    def declare(self, method: "Attribution", inputs: torch.Tensor, target: Any = None) -> Hashable | None:
        """Announce that ``method`` will explain ``target`` on ``inputs`` (the very tensor it
        will be called with). Returns the key for :meth:`charged_seconds`, or None when the
        method does not share (it did not opt in, or gradients are off in inference mode)."""
        if method.adapter is None or torch.is_inference_mode_enabled():
            return None
        request = method.attention_request()
        if request is None:
            return None
        tgt = normalize_target(target, inputs.shape[0], inputs.device)
        key = self.key(method, inputs, tgt)
        if key in self._of:
            return key
        gkey = (id(method.adapter.model), type(method.adapter), id(inputs), _target_key(tgt),
                _forward_changes(method, request))
        group = self._groups.setdefault(gkey, _Group(inputs, tgt))
        if group.results is not None:  # its pass already ran: too late to join it
            return None
        group.keys.append(key)
        group.methods.append(method)
        group.requests.append(request)
        self._of[key] = group
        return key

    def pass_for(self, method: "Attribution", inputs: torch.Tensor, target: torch.Tensor | None) -> AttentionPass | None:
        """``method``'s part of its group's pass (running the pass first if nobody has yet), or
        None when it was not declared for exactly these inputs and target, or shares with nobody."""
        key = self.key(method, inputs, target)
        group = self._of.get(key)
        if group is None or len(group.keys) < 2:
            return None
        if group.results is None:
            t0 = time.perf_counter()
            runs = attention_passes(group.methods[0].adapter, inputs, target, group.requests)
            group.seconds, group.ran_by = time.perf_counter() - t0, key
            group.results = dict(zip(group.keys, runs))
            group.requests = []  # their reducers hold per-pass state: never reused
            self.passes += 1
            self.forwards_saved += len(runs) - 1
            self.backwards_saved += max(0, sum(m.needs_gradients for m in group.methods) - 1)
        return group.results.pop(key, None)

    def charged_seconds(self, key: Hashable | None) -> float:
        """What to add to the seconds measured around this method's call so that the shared
        pass counts 1/n to each of the n methods that shared it (negative for the method whose
        call ran it); 0 for a method that shared nothing."""
        group = self._of.get(key) if key is not None else None
        if group is None or group.results is None:
            return 0.0
        share = group.seconds / len(group.keys)
        return share - (group.seconds if group.ran_by == key else 0.0)

    def stats(self) -> dict[str, int]:
        return {"passes": self.passes, "forwards_saved": self.forwards_saved, "backwards_saved": self.backwards_saved}


@contextmanager
def sharing() -> Iterator[SharedPasses]:
    """Open a memo for one batch; methods declared in it share their attention pass."""
    memo = SharedPasses()
    token = _ACTIVE.set(memo)
    try:
        yield memo
    finally:
        _ACTIVE.reset(token)


def shared_pass(method: "Attribution", inputs: torch.Tensor, target: torch.Tensor | None) -> AttentionPass:
    """The attention pass ``method`` builds its map from: its part of a shared pass when one is
    open for it, else a pass of its own."""
    memo = _ACTIVE.get()
    run = None if memo is None else memo.pass_for(method, inputs, target)
    if run is None:
        request = method.attention_request()
        assert request is not None
        run = attention_passes(method.adapter, inputs, target, [request])[0]
    return run
