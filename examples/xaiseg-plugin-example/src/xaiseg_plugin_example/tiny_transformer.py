"""A third-party model family and its xaiseg adapter.

``TinyTransformer`` is a minimal image transformer this package defines itself (patch
embedding, a class token, pre-norm blocks with an explicit softmax module, class-token head).
``TinyTransformerAdapter`` tells xaiseg what it looks like inside; registered under the
``xaiseg.adapters`` entry point, it makes rollout, grad-rollout, HGI-SAM's ViT extension,
Grad-CAM and the captum methods work on the model without any change to xaiseg.

Deriving from :class:`xaiseg.GlobalAttentionAdapter` gives the token layout (prefix tokens,
then the grid row by row), readout rows and feature maps; the adapter only lists the blocks and
says where attention is heard (:meth:`read_attention`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

import xaiseg


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.softmax = nn.Softmax(dim=-1)  # a module, so the adapter can hook Z -> A
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = self.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    """Class token + (size/patch)² patch tokens, ``depth`` blocks, a linear head on the class token."""

    def __init__(self, size: int = 32, patch: int = 8, dim: int = 16, depth: int = 2, heads: int = 2,
                 in_chans: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        self.size, self.patch, self.in_chans, self.num_classes = size, patch, in_chans, num_classes
        self.embed = nn.Conv2d(in_chans, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
        for blk in self.blocks:
            t = blk(t)
        return self.head(self.norm(t)[:, 0])


class TinyTransformerAdapter(xaiseg.GlobalAttentionAdapter):
    """xaiseg's view of :class:`TinyTransformer`."""

    architecture = "tiny-transformer"
    description = "xaiseg_plugin_example.TinyTransformer"
    captures_scores = True  # the softmax is a module: its input Z is heard directly

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.grid = (model.size // model.patch, model.size // model.patch)
        rows = [(f"blocks.{i}", blk, blk.softmax, blk.heads) for i, blk in enumerate(model.blocks)]
        self._stages = self._one_stage(rows, model.cls.shape[-1])

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        return isinstance(model, TinyTransformer)

    @property
    def prefix_tokens(self) -> int:
        return 1

    def _readout_weights(self) -> dict[int, float]:
        return {0: 1.0}  # the head reads the class token

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.model.size, self.model.size)

    @property
    def in_chans(self) -> int:
        return self.model.in_chans

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def default_cam_layer(self) -> str:
        return f"blocks.{len(self.model.blocks) - 1}.norm1"

    def read_attention(self, block: xaiseg.BlockInfo, args: tuple, out: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return args[0], out  # softmax(Z) -> A

    def attention_switches(self, blocks: Sequence[xaiseg.BlockInfo]) -> list[tuple[object, str, Any]]:
        return []  # no fused path to switch off
