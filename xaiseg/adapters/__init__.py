"""Model adapters: what a classifier looks like inside, behind one interface."""
from __future__ import annotations

from torch import nn

from .base import AttentionCapture, AttentionRecord, BlockInfo, ModelAdapter, StageInfo
from .swin import SwinAdapter

# Tried in order; a ViT adapter joins this list when it lands.
ADAPTERS: list[type[ModelAdapter]] = [SwinAdapter]


def get_adapter(model: nn.Module | ModelAdapter) -> ModelAdapter:
    """The adapter for ``model``; a ``TypeError`` naming what is supported otherwise."""
    if isinstance(model, ModelAdapter):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    for cls in ADAPTERS:
        if cls.supports(model):
            return cls(model)
    supported = ", ".join(f"{c.architecture} ({_describe(c)})" for c in ADAPTERS)
    raise TypeError(
        f"model of type {type(model).__module__}.{type(model).__name__} is not supported; "
        f"supported architectures: {supported}"
    )


def _describe(cls: type[ModelAdapter]) -> str:
    return {"swin": "timm.models.swin_transformer.SwinTransformer"}.get(cls.architecture, cls.__name__)


__all__ = [
    "ADAPTERS",
    "AttentionCapture",
    "AttentionRecord",
    "BlockInfo",
    "ModelAdapter",
    "StageInfo",
    "SwinAdapter",
    "get_adapter",
]
