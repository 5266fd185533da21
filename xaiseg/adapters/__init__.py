"""Model adapters: what a classifier looks like inside, behind one interface.

Adapters are plugins: every adapter, built-in or third-party, is registered under the
``xaiseg.adapters`` entry-point group (built-ins in xaiseg's pyproject.toml). For a model,
adapters from other distributions are asked first (they may know a subclass of a model family
better), then the built-ins, each in name order; the first whose ``supports(model)`` is true reads it.
"""
from __future__ import annotations

import warnings

from torch import nn

from ..registry import adapters as _registry
from .base import (ATTENTION, FEATURE_MAP, SHIFTED_WINDOWS, AttentionCapture, AttentionRecord, BlockInfo, HookCapture,
                   ModelAdapter, StageInfo)
from .swin import SwinAdapter, SwinV2Adapter
from .vit import GlobalAttentionAdapter, ViTAdapter


def adapter_classes() -> list[type[ModelAdapter]]:
    """Every installed adapter class, in the order they are tried (a broken plugin is skipped
    with a warning, never hiding the others)."""
    names = _registry.names()
    order = sorted(names, key=lambda n: (_registry.distribution(n) == "xaiseg", n))
    out: list[type[ModelAdapter]] = []
    for name in order:
        try:
            out.append(_registry.get(name))
        except ImportError as exc:
            warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
    return out


def get_adapter(model: nn.Module | ModelAdapter) -> ModelAdapter:
    """The adapter for ``model``; a ``TypeError`` naming what is supported otherwise."""
    if isinstance(model, ModelAdapter):
        return model
    if not isinstance(model, nn.Module):
        hint = "; pass its .model" if isinstance(getattr(model, "model", None), nn.Module) else ""
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}{hint}")
    classes = adapter_classes()
    for cls in classes:
        if cls.supports(model):
            return cls(model)
    supported = ", ".join(f"{c.architecture} ({c.description or c.__name__})" for c in classes)
    raise TypeError(
        f"model of type {type(model).__module__}.{type(model).__name__} is not supported; "
        f"supported architectures: {supported}"
    )


def adapter_for_name(name: str) -> type[ModelAdapter] | None:
    """The adapter whose family builds the timm model ``name`` (``xaiseg train --model``), if any."""
    for cls in adapter_classes():
        if cls.accepts_name(name):
            return cls
    return None


from .support import method_supports, methods_for, support_reason, supported_families, unsupported  # noqa: E402

__all__ = [
    "ATTENTION",
    "FEATURE_MAP",
    "SHIFTED_WINDOWS",
    "AttentionCapture",
    "AttentionRecord",
    "BlockInfo",
    "GlobalAttentionAdapter",
    "HookCapture",
    "ModelAdapter",
    "StageInfo",
    "SwinAdapter",
    "SwinV2Adapter",
    "ViTAdapter",
    "adapter_classes",
    "adapter_for_name",
    "get_adapter",
    "method_supports",
    "methods_for",
    "support_reason",
    "supported_families",
    "unsupported",
]
