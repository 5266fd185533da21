"""Adapter for timm's ``VisionTransformer`` (``vit_*``, ``deit_*``, ``deit3_*``, registers
``vit_*_reg*``, the distilled DeiT ``VisionTransformerDistilled``).

A ViT is read as one stage of global-attention blocks on the patch grid: each block's single
"window" is the whole sequence, ``prefix_tokens`` (class, distillation, register tokens, as
timm's ``num_prefix_tokens`` counts them) followed by the grid row by row. Nothing is padded or
shifted, so tokens map to the grid by dropping the prefix and reshaping.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .base import ATTENTION, FEATURE_MAP, BlockInfo, ModelAdapter, StageInfo
from .timm_family import TimmFamily


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class GlobalAttentionAdapter(ModelAdapter):
    """What every ViT-like adapter shares once it has listed its blocks, grid and prefix: the
    token layout (prefix, then the grid row by row), readout rows and feature maps."""

    capabilities = frozenset({ATTENTION, FEATURE_MAP})
    captures_scores = False

    grid: tuple[int, int]
    _stages: tuple[StageInfo, ...]

    @property
    def stages(self) -> tuple[StageInfo, ...]:
        return self._stages

    def _one_stage(self, blocks: Sequence[tuple[str, nn.Module, nn.Module, int]], dim: int) -> tuple[StageInfo, ...]:
        """One stage from (path, block, hooked attention module, heads) per block."""
        infos = tuple(
            BlockInfo(stage=0, index=i, name=name, module=blk, attention=att, grid=self.grid, window=self.grid,
                      shift=(0, 0), num_heads=int(heads), prefix_tokens=self.prefix_tokens)
            for i, (name, blk, att, heads) in enumerate(blocks)
        )
        return (StageInfo(index=0, grid=self.grid, dim=int(dim), blocks=infos),)

    def windows_to_grid(self, values: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        *lead, b, n = values.shape
        h, w = block.grid
        p = block.prefix_tokens
        if n != p + h * w:
            raise ValueError(f"values of shape {tuple(values.shape)} do not fit {block.name}'s {p} prefix + {h}×{w} tokens")
        return values[..., p:].reshape(*lead, b, h, w)

    def grid_to_windows(self, values: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        *lead, b, h, w = values.shape
        if (h, w) != block.grid:
            raise ValueError(f"values of shape {tuple(values.shape)} are not on {block.name}'s {block.grid} grid")
        prefix = values.new_zeros(*lead, b, block.prefix_tokens)  # the prefix holds no grid value
        return torch.cat([prefix, values.reshape(*lead, b, h * w)], dim=-1)

    def to_nchw(self, output: torch.Tensor, module_path: str) -> torch.Tensor:
        h, w = self.grid
        if output.dim() == 3 and output.shape[1] == self.prefix_tokens + h * w:
            tokens = output[:, self.prefix_tokens :]
            return tokens.transpose(1, 2).reshape(output.shape[0], output.shape[2], h, w)
        if output.dim() == 4 and tuple(output.shape[1:3]) == (h, w):  # NHWC (timm patch_embed, flatten=False)
            return output.permute(0, 3, 1, 2)
        raise ValueError(
            f"cannot read the output of {module_path!r} (shape {tuple(output.shape)}) as {self.prefix_tokens} "
            f"prefix + {h}×{w} patch tokens; pick a module inside a block (e.g. {self.default_cam_layer})"
        )

    def _readout_weights(self) -> dict[int, float]:
        """Token index -> weight of the tokens the head reads ({} means: patch tokens, uniform)."""
        raise NotImplementedError

    def readout(self, batch: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
        n = self.prefix_tokens + self.grid[0] * self.grid[1]
        row = torch.zeros(n, dtype=dtype, device=device)
        weights = self._readout_weights()
        if weights:
            for i, wt in weights.items():
                row[i] = wt
        else:
            row[self.prefix_tokens :] = 1.0 / (n - self.prefix_tokens)
        return row.expand(batch, n).clone()


class ViTAdapter(TimmFamily, GlobalAttentionAdapter):
    """Any timm ``VisionTransformer`` classifier with standard ``Attention`` blocks."""

    timm_module, timm_class = "timm.models.vision_transformer", "VisionTransformer"
    architecture = "vit"
    description = "timm.models.vision_transformer.VisionTransformer (vit_*, deit_*, deit3_*, *_reg*)"

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.grid = _pair(model.patch_embed.grid_size)
        pool = getattr(model, "global_pool", "token")
        if pool not in ("token", "avg", ""):
            raise TypeError(f"timm {type(model).__name__} with global_pool={pool!r} is not supported (token or avg pooling only)")
        if pool == "" or (pool == "token" and not getattr(model, "has_class_token", True)):
            raise TypeError(f"timm {type(model).__name__} without a pooled readout (global_pool='' or no class token) "
                            "is not supported")
        self.pool = pool
        rows = []
        for i, blk in enumerate(model.blocks):
            attn = getattr(blk, "attn", None)
            if attn is None or not isinstance(getattr(attn, "attn_drop", None), nn.Module):
                raise TypeError(f"block {i} of the ViT has no standard timm Attention (attn.attn_drop); it cannot be read")
            rows.append((f"blocks.{i}", blk, attn.attn_drop, attn.num_heads))
        self._stages = self._one_stage(rows, model.embed_dim)

    @classmethod
    def accepts_name(cls, name: str) -> bool:
        return name.startswith(("vit_", "deit_", "deit3_"))

    @property
    def prefix_tokens(self) -> int:
        return int(self.model.num_prefix_tokens)

    @property
    def distilled(self) -> bool:
        return getattr(self.model, "dist_token", None) is not None

    def _readout_weights(self) -> dict[int, float]:
        if self.pool == "avg":
            return {}
        # The distilled DeiT's head averages its class-token and distillation-token heads (eval).
        return {0: 0.5, 1: 0.5} if self.distilled else {0: 1.0}

    @property
    def input_size(self) -> tuple[int, int]:
        return _pair(self.model.patch_embed.img_size)

    @property
    def in_chans(self) -> int:
        return int(self.model.patch_embed.proj.in_channels)

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    @property
    def default_cam_layer(self) -> str:
        # jacobgil's recipe for ViT: the first norm of the last block (its input, normalised).
        return f"blocks.{len(self.model.blocks) - 1}.norm1"

    def read_attention(self, block: BlockInfo, args: tuple, out: torch.Tensor) -> tuple[None, torch.Tensor]:
        # attn.attn_drop(softmax(Z)): its output is the A that multiplies V (equal to softmax(Z)
        # in eval mode); Z itself is a local of Attention.forward that no hook can reach.
        return None, out

    def attention_switches(self, blocks: Sequence[BlockInfo]) -> list[tuple[object, str, object]]:
        # fused attention (scaled_dot_product_attention) never materialises A: off for the pass
        return [(b.module.attn, "fused_attn", False) for b in blocks]


class EvaAdapter(ViTAdapter):
    """timm's ``Eva`` (``eva02_*``, ``eva_*``): a ViT whose attention adds rotary position
    embeddings and q/k norms before the same softmax and ``attn_drop``, so it is read exactly
    like a ViT (A hooked at ``attn.attn_drop``, fused attention off for the pass)."""

    timm_module, timm_class = "timm.models.eva", "Eva"
    architecture = "eva"
    description = "timm.models.eva.Eva (eva02_*, eva_*)"

    @classmethod
    def accepts_name(cls, name: str) -> bool:
        return name.startswith(("eva02_", "eva_"))
