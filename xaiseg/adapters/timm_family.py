"""What every timm family's adapter shares: which timm class it reads, and that timm's own
``checkpoint_filter_fn`` of that model's module converts other layouts for ``--init``."""
from __future__ import annotations

import importlib

import torch
from torch import nn


class TimmFamily:
    """Mixin for adapters of one timm model class: set ``timm_module`` and ``timm_class``."""

    timm_module: str
    timm_class: str
    model: nn.Module

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        return isinstance(model, getattr(importlib.import_module(cls.timm_module), cls.timm_class))

    def convert_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # timm's filter also resizes relative-position tables (Swin) and position embeddings (ViT, EVA)
        return importlib.import_module(self.timm_module).checkpoint_filter_fn(state, self.model)
