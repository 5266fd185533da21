"""Adapters for timm's Swin Transformer V1 and V2 (``SwinTransformer``, ``SwinTransformerV2``).

V2 changes what happens inside a window (cosine attention, a continuous position bias, norms
after attention and MLP) but not where tokens go: the same stages, windows, shifts, padding and
patch merging, and the same ``attn.softmax`` module, so one adapter reads both.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import ATTENTION, FEATURE_MAP, SHIFTED_WINDOWS, BlockInfo, ModelAdapter, StageInfo
from .timm_family import TimmFamily


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class SwinAdapter(TimmFamily, ModelAdapter):
    """Any timm Swin V1 classifier: every size, windows 7/12/…, any img_size it was built for."""

    timm_module, timm_class = "timm.models.swin_transformer", "SwinTransformer"
    architecture = "swin"
    description = "timm.models.swin_transformer.SwinTransformer"
    capabilities = frozenset({ATTENTION, FEATURE_MAP, SHIFTED_WINDOWS})
    pad_before_roll = False  # timm rolls the grid, then pads it; Hugging Face pads, then rolls

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self._stages = self._read_stages(model)

    @staticmethod
    def _read_stages(model: nn.Module) -> tuple[StageInfo, ...]:
        stages: list[StageInfo] = []
        for si, stage in enumerate(model.layers):
            blocks = []
            for bi, blk in enumerate(stage.blocks):
                blocks.append(
                    BlockInfo(
                        stage=si,
                        index=bi,
                        name=f"layers.{si}.blocks.{bi}",
                        module=blk,
                        attention=blk.attn.softmax,
                        grid=_pair(blk.input_resolution),
                        window=_pair(blk.window_size),
                        shift=_pair(blk.shift_size),
                        num_heads=int(blk.attn.num_heads),
                    )
                )
            stages.append(
                StageInfo(
                    index=si,
                    grid=_pair(stage.output_resolution),
                    dim=int(blocks[0].module.norm1.normalized_shape[0]),
                    blocks=tuple(blocks),
                    merges_input=not isinstance(stage.downsample, nn.Identity),
                )
            )
        return tuple(stages)

    @classmethod
    def accepts_name(cls, name: str) -> bool:
        # swinv2_* and swin_s3_* are other timm classes; the V2 adapter takes swinv2_* itself
        return name.startswith("swin_") and not name.startswith("swin_s3")

    @property
    def input_size(self) -> tuple[int, int]:
        return _pair(self.model.patch_embed.img_size)

    @property
    def in_chans(self) -> int:
        return int(self.model.in_chans)

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    @property
    def stages(self) -> tuple[StageInfo, ...]:
        return self._stages

    @property
    def default_cam_layer(self) -> str:
        # The published Grad-CAM target (HGI-SAM paper): the first norm of the very last block.
        return f"layers.{len(self._stages) - 1}.blocks.{len(self._stages[-1].blocks) - 1}.norm1"

    def read_attention(self, block: BlockInfo, args: tuple, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return args[0], out  # attn.softmax(Z) -> A

    def attention_switches(self, blocks: Sequence[BlockInfo]) -> list[tuple[object, str, object]]:
        # timm's fused path (scaled_dot_product_attention) never materialises softmax(Z); the
        # explicit path runs Z through attn.softmax, which is where we listen. (V2 has no fused path.)
        return [(b.module.attn, "fused_attn", False) for b in blocks if hasattr(b.module.attn, "fused_attn")]

    def windows_to_grid(self, values: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        *lead, bnw, n = values.shape
        wh, ww = block.window
        ph, pw = block.padded_grid
        nwh, nww = ph // wh, pw // ww
        if n != wh * ww or bnw % (nwh * nww):
            raise ValueError(
                f"values of shape {tuple(values.shape)} do not fit {block.name}'s windows "
                f"({nwh}×{nww} windows of {wh}×{ww} tokens)"
            )
        b = bnw // (nwh * nww)
        x = values.reshape(*lead, b, nwh, nww, wh, ww)
        k = len(lead)
        x = x.permute(*range(k), k, k + 1, k + 3, k + 2, k + 4).reshape(*lead, b, ph, pw)
        h, w = block.grid
        if block.shifted and self.pad_before_roll:
            x = torch.roll(x, shifts=block.shift, dims=(-2, -1))
        x = x[..., :h, :w]
        if block.shifted and not self.pad_before_roll:
            # timm rolls by -shift before partitioning; +shift puts tokens back where they were.
            x = torch.roll(x, shifts=block.shift, dims=(-2, -1))
        return x

    def grid_to_windows(self, values: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        *lead, b, h, w = values.shape
        if (h, w) != block.grid:
            raise ValueError(f"values of shape {tuple(values.shape)} are not on {block.name}'s {block.grid} grid")
        x = values
        back = (-block.shift[0], -block.shift[1])
        if block.shifted and not self.pad_before_roll:
            # The same order as timm's SwinTransformerBlock._attn: roll by -shift, then pad.
            x = torch.roll(x, shifts=back, dims=(-2, -1))
        wh, ww = block.window
        ph, pw = block.padded_grid
        if (ph, pw) != (h, w):
            x = torch.nn.functional.pad(x, (0, pw - w, 0, ph - h))
        if block.shifted and self.pad_before_roll:
            x = torch.roll(x, shifts=back, dims=(-2, -1))
        k = len(lead)
        x = x.reshape(*lead, b, ph // wh, wh, pw // ww, ww)
        x = x.permute(*range(k), k, k + 1, k + 3, k + 2, k + 4)
        return x.reshape(*lead, b * (ph // wh) * (pw // ww), wh * ww)

    def split_merged(self, values: torch.Tensor, stage: StageInfo) -> torch.Tensor:
        if not stage.merges_input or stage.index == 0:
            raise ValueError(f"stage {stage.index} does not merge tokens of a previous stage")
        prev = self._stages[stage.index - 1].grid
        if tuple(values.shape[-2:]) != stage.grid:
            raise ValueError(f"values of shape {tuple(values.shape)} are not on stage {stage.index}'s {stage.grid} grid")
        # timm's PatchMerging pads odd grids at the bottom/right, then merges each 2×2 group.
        up = values.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1) / 4.0
        return up[..., : prev[0], : prev[1]]

    def to_nchw(self, output: torch.Tensor, module_path: str) -> torch.Tensor:
        grid = self._grid_for(module_path, output)
        if output.dim() == 4 and tuple(output.shape[1:3]) == grid:
            return output.permute(0, 3, 1, 2)
        if output.dim() == 4 and tuple(output.shape[2:4]) == grid:
            return output
        if output.dim() == 3 and output.shape[1] == grid[0] * grid[1]:
            return output.transpose(1, 2).reshape(output.shape[0], output.shape[2], *grid)
        raise ValueError(
            f"cannot read the output of {module_path!r} (shape {tuple(output.shape)}) as a "
            f"feature map on the {grid[0]}×{grid[1]} token grid; pick a module inside a stage"
        )

    def _grid_for(self, module_path: str, output: torch.Tensor) -> tuple[int, int]:
        parts = module_path.split(".")
        if len(parts) >= 2 and parts[0] == "layers" and parts[1].lstrip("-").isdigit():
            return self._stages[int(parts[1])].grid
        if parts[0] in ("norm", "head"):
            return self._stages[-1].grid
        if parts[0] == "patch_embed":
            return self._stages[0].grid
        for st in self._stages:  # unknown path: the one grid whose shape matches the tensor
            if (output.dim() == 4 and tuple(output.shape[1:3]) == st.grid) or (
                output.dim() == 3 and output.shape[1] == st.grid[0] * st.grid[1]
            ):
                return st.grid
        raise ValueError(f"cannot tell which token grid {module_path!r} is on")


class SwinV2Adapter(SwinAdapter):
    """Any timm Swin V2 classifier (``swinv2_*``): read exactly like V1."""

    timm_module, timm_class = "timm.models.swin_transformer_v2", "SwinTransformerV2"
    architecture = "swinv2"
    description = "timm.models.swin_transformer_v2.SwinTransformerV2"

    @classmethod
    def accepts_name(cls, name: str) -> bool:
        return name.startswith("swinv2_") and not name.startswith("swinv2_cr")  # _cr: another class

    @property
    def default_cam_layer(self) -> str:
        # V2 normalises *after* attention (post-norm), so norm1 is not the block's input as in
        # V1; the last block's output is the last feature map on the grid.
        return f"layers.{len(self._stages) - 1}.blocks.{len(self._stages[-1].blocks) - 1}"
