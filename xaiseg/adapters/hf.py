"""Adapters for Hugging Face ``transformers`` classifiers: ``ViTForImageClassification`` and
``SwinForImageClassification`` (transformers >= 5; install with ``pip install "xaiseg[hf]"``).

transformers is never imported unless the model handed over comes from it. A Hugging Face
model returns an output object, not logits, so the adapter's ``model`` is a thin wrapper
(``net`` is the original) whose forward returns ``.logits``: every method, captum and the
grad-cam package included, then sees an ordinary classifier. Module paths (Grad-CAM's
``layer``) are paths in that wrapper, e.g. ``net.vit.layers.3.layernorm_before``.

Attention is read from the attention module's returned weights, which exist only with the
``eager`` implementation: the model's ``config._attn_implementation`` is switched to it for the
pass and restored. Hugging Face Swin pads the grid to whole windows *before* the cyclic shift
(timm shifts first), which :class:`HFSwinAdapter` follows.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .base import BlockInfo, StageInfo
from .swin import SwinAdapter, _pair
from .vit import GlobalAttentionAdapter


class HFLogits(nn.Module):
    """``net(pixel_values).logits`` as a plain forward."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).logits


def _is_hf(model: nn.Module, class_name: str) -> bool:
    if isinstance(model, HFLogits):
        model = model.net
    if not type(model).__module__.startswith("transformers."):
        return False  # never import transformers for a model that does not come from it
    import transformers

    return isinstance(model, getattr(transformers, class_name))


def _unwrap(model: nn.Module) -> HFLogits:
    return model if isinstance(model, HFLogits) else HFLogits(model)


class _FromConfig:
    """What both Hugging Face adapters read from the model's config and attention modules."""

    cfg: Any

    @property
    def input_size(self) -> tuple[int, int]:
        return _pair(self.cfg.image_size)

    @property
    def in_chans(self) -> int:
        return int(self.cfg.num_channels)

    @property
    def num_classes(self) -> int:
        return int(self.cfg.num_labels)

    def convert_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict of the bare Hugging Face model (``vit.…``, ``swin.…``, as
        ``save_pretrained`` writes it) gets the wrapper's ``net.`` prefix."""
        if state and not all(k.startswith("net.") for k in state):
            return {k if k.startswith("net.") else "net." + k: v for k, v in state.items()}
        return state

    def read_attention(self, block: BlockInfo, args: tuple, out: Any) -> tuple[None, torch.Tensor]:
        weights = out[1] if isinstance(out, tuple) and len(out) > 1 else None
        if weights is None:
            raise RuntimeError(f"{block.name} returned no attention weights; the eager attention implementation was not used")
        return None, weights

    def attention_switches(self, blocks: Sequence[BlockInfo]) -> list[tuple[object, str, Any]]:
        # sdpa and flash kernels return no weights: the eager implementation for the pass
        return [(self.cfg, "_attn_implementation", "eager")]


class HFViTAdapter(_FromConfig, GlobalAttentionAdapter):
    """``transformers.ViTForImageClassification``: a class token, then the patch grid."""

    architecture = "hf-vit"
    description = "transformers.ViTForImageClassification"

    def __init__(self, model: nn.Module) -> None:
        super().__init__(_unwrap(model))
        net = self.model.net
        cfg = net.config
        self.cfg = cfg
        size, patch = _pair(cfg.image_size), _pair(cfg.patch_size)
        self.grid = (size[0] // patch[0], size[1] // patch[1])
        layers = getattr(net.vit, "layers", None)
        if layers is None:
            raise TypeError("this transformers ViT has no vit.layers (transformers >= 5 is needed)")
        rows = [(f"net.vit.layers.{i}", layer, layer.attention, cfg.num_attention_heads) for i, layer in enumerate(layers)]
        self._stages = self._one_stage(rows, cfg.hidden_size)

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        return _is_hf(model, "ViTForImageClassification")

    @property
    def prefix_tokens(self) -> int:
        return 1

    def _readout_weights(self) -> dict[int, float]:
        return {0: 1.0}  # the classifier reads the class token


    @property
    def default_cam_layer(self) -> str:
        return f"net.vit.layers.{len(self._stages[0].blocks) - 1}.layernorm_before"



class HFSwinAdapter(_FromConfig, SwinAdapter):
    """``transformers.SwinForImageClassification``: Swin's stages, windows and shifts."""

    architecture = "hf-swin"
    description = "transformers.SwinForImageClassification"
    captures_scores = False
    pad_before_roll = True
    _PREFIX = "net.swin.encoder."

    def __init__(self, model: nn.Module) -> None:
        wrapped = _unwrap(model)
        self.cfg = wrapped.net.config
        super().__init__(wrapped)

    def _read_stages(self, model: nn.Module) -> tuple[StageInfo, ...]:  # type: ignore[override]
        layers = model.net.swin.encoder.layers
        stages: list[StageInfo] = []
        for si, stage in enumerate(layers):
            blocks = []
            for bi, blk in enumerate(stage.blocks):
                grid = _pair(blk.input_resolution)
                # SwinLayer.set_shift_and_window_size, applied at every forward: a grid no larger
                # than the window is one unshifted window.
                small = min(grid) <= int(blk.window_size)
                window = min(grid) if small else int(blk.window_size)
                shift = 0 if small else int(blk.shift_size)
                blocks.append(BlockInfo(stage=si, index=bi, name=f"{self._PREFIX}layers.{si}.blocks.{bi}", module=blk,
                                        attention=blk.attention, grid=grid, window=(window, window), shift=(shift, shift),
                                        num_heads=int(self.cfg.num_heads[si])))
            merged = si > 0 and layers[si - 1].downsample is not None
            stages.append(StageInfo(index=si, grid=blocks[0].grid, dim=int(blk.layernorm_before.normalized_shape[0]),
                                    blocks=tuple(blocks), merges_input=merged))
        return tuple(stages)

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        return _is_hf(model, "SwinForImageClassification")

    @classmethod
    def accepts_name(cls, name: str) -> bool:
        return False


    @property
    def default_cam_layer(self) -> str:
        last = self._stages[-1].blocks[-1]
        return f"{last.name}.layernorm_before"  # as V1's norm1: the last block's normalised input


    def _grid_for(self, module_path: str, output: torch.Tensor) -> tuple[int, int]:
        if module_path.startswith(self._PREFIX):
            module_path = module_path[len(self._PREFIX):]
        return super()._grid_for(module_path, output)
