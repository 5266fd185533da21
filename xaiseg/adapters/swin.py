"""Adapter for timm's Swin Transformer V1 (``timm.models.swin_transformer.SwinTransformer``)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .base import AttentionCapture, AttentionRecord, BlockInfo, ModelAdapter, StageInfo


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class _SwinCapture(AttentionCapture):
    def __init__(
        self,
        blocks: Sequence[BlockInfo],
        keep_scores: bool,
        reduce_probs: Callable[[torch.Tensor, BlockInfo], torch.Tensor] | None,
        keep_outputs: bool = False,
    ) -> None:
        self.blocks = list(blocks)
        self.keep_scores = keep_scores
        self.keep_outputs = keep_outputs
        self.reduce_probs = reduce_probs
        self.records = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._fused: list[tuple[nn.Module, bool]] = []

    def _hook(self, block: BlockInfo):
        def hook(_mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            probs = out.detach() if self.reduce_probs is None else self.reduce_probs(out.detach(), block)
            self.records.append(
                AttentionRecord(
                    block,
                    probs=probs,
                    scores=args[0] if self.keep_scores else None,
                    outputs=out if self.keep_outputs else None,
                )
            )

        return hook

    def __enter__(self) -> "_SwinCapture":
        self.records = []
        try:
            for b in self.blocks:
                attn = b.module.attn
                # timm's fused path (scaled_dot_product_attention) never materialises softmax(Z);
                # the explicit path runs Z through attn.softmax, which is where we listen.
                self._fused.append((attn, bool(getattr(attn, "fused_attn", False))))
                attn.fused_attn = False
                self._handles.append(b.attention.register_forward_hook(self._hook(b)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for attn, flag in reversed(self._fused):
            attn.fused_attn = flag
        self._fused.clear()

    def clear(self) -> None:
        self.records = []


class SwinAdapter(ModelAdapter):
    """Any timm Swin V1 classifier: every size, windows 7/12/…, any img_size it was built for."""

    architecture = "swin"

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
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
        self._stages = tuple(stages)

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        from timm.models.swin_transformer import SwinTransformer

        return isinstance(model, SwinTransformer)

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

    def capture(
        self,
        blocks: Sequence[BlockInfo],
        *,
        keep_scores: bool = False,
        reduce_probs: Callable[[torch.Tensor, BlockInfo], torch.Tensor] | None = None,
        keep_outputs: bool = False,
    ) -> AttentionCapture:
        return _SwinCapture(blocks, keep_scores, reduce_probs, keep_outputs)

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
        x = x[..., :h, :w]
        if block.shifted:
            # timm rolls by -shift before partitioning; +shift puts tokens back where they were.
            x = torch.roll(x, shifts=block.shift, dims=(-2, -1))
        return x

    def grid_to_windows(self, values: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        *lead, b, h, w = values.shape
        if (h, w) != block.grid:
            raise ValueError(f"values of shape {tuple(values.shape)} are not on {block.name}'s {block.grid} grid")
        x = values
        if block.shifted:
            # The same order as timm's SwinTransformerBlock._attn: roll by -shift, then pad.
            x = torch.roll(x, shifts=(-block.shift[0], -block.shift[1]), dims=(-2, -1))
        wh, ww = block.window
        ph, pw = block.padded_grid
        if (ph, pw) != (h, w):
            x = torch.nn.functional.pad(x, (0, pw - w, 0, ph - h))
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
