"""Shared fixtures: tiny timm Swins built with pretrained=False so every test runs on a CPU."""
from __future__ import annotations

import pytest
import timm
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_swin(
    img_size: int | tuple[int, int] = 64,
    window_size: int = 4,
    depths: tuple[int, ...] = (2, 2, 3, 2),
    num_heads: tuple[int, ...] = (1, 2, 2, 4),
    embed_dim: int = 8,
    num_classes: int = 2,
    patch_size: int = 4,
    seed: int = 0,
    **kwargs,
) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        img_size=img_size,
        patch_size=patch_size,
        window_size=window_size,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=num_heads,
        num_classes=num_classes,
        **kwargs,
    )
    return model.eval()


@pytest.fixture
def swin() -> torch.nn.Module:
    return tiny_swin()
