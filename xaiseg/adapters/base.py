"""What an attribution method may ask of a model, independent of its architecture.

A method never reaches into timm internals: it asks an adapter for the stages, blocks, token
grids, windows and shifts, for a context that captures attention, and for the layout of any
module's output. Swin (V1, V2, Hugging Face) has windows and shifts; a ViT (timm, Hugging Face)
is one stage of global-attention blocks whose single "window" holds the prefix tokens (class,
distillation, registers) and the whole patch grid. Adapters are plugins: registered in the
``xaiseg.adapters`` entry-point group, like methods.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class BlockInfo:
    """One attention block.

    ``grid`` is the token grid (H, W) the block works on; ``window`` the (h, w) of its attention
    windows (the whole grid for global attention); ``shift`` the cyclic shift the block applies
    before partitioning (read from the block, never assumed); ``prefix_tokens`` counts tokens
    that are not on the grid (a ViT's CLS token).
    """

    stage: int
    index: int
    name: str
    module: nn.Module
    attention: nn.Module
    grid: tuple[int, int]
    window: tuple[int, int]
    shift: tuple[int, int]
    num_heads: int
    prefix_tokens: int = 0

    @property
    def padded_grid(self) -> tuple[int, int]:
        """The grid after padding up to whole windows (timm pads bottom/right)."""
        return tuple(-(-g // w) * w for g, w in zip(self.grid, self.window))  # type: ignore[return-value]

    @property
    def num_windows(self) -> int:
        ph, pw = self.padded_grid
        return (ph // self.window[0]) * (pw // self.window[1])

    @property
    def window_tokens(self) -> int:
        return self.window[0] * self.window[1] + self.prefix_tokens

    @property
    def shifted(self) -> bool:
        return any(s != 0 for s in self.shift)


@dataclass(frozen=True)
class StageInfo:
    """A run of blocks on one token grid; ``merges_input`` says whether a 2×2 patch merging
    precedes it (so its grid is the previous one halved)."""

    index: int
    grid: tuple[int, int]
    dim: int
    blocks: tuple[BlockInfo, ...] = field(default_factory=tuple)
    merges_input: bool = False


@dataclass
class AttentionRecord:
    """What a capture keeps of one block's forward: the reduced attention probabilities (the
    output of ``reduce_probs``, or A itself) and, if asked, the softmax input Z still attached
    to the autograd graph."""

    block: BlockInfo
    probs: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    outputs: torch.Tensor | None = None  # A = softmax(Z) still attached to the graph, if asked


# What an adapter can do for a method (``Attribution.requires`` names a subset of these).
ATTENTION = "attention"  # capture() records softmax(Z) of every block
FEATURE_MAP = "feature-map"  # to_nchw() reads a module's output as a map on the token grid
SHIFTED_WINDOWS = "shifted-windows"  # Swin's (regular, shifted) window pairs and patch merging


class ModelAdapter(abc.ABC):
    """Architecture-specific knowledge behind a small, uniform interface."""

    architecture: ClassVar[str] = ""
    description: ClassVar[str] = ""  # the model classes it reads, for messages and `xaiseg methods`
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # Whether capture() can keep the softmax input Z; if not (timm ViT, Hugging Face), ∂y/∂Z is
    # obtained exactly from ∂y/∂A through the softmax Jacobian (xaiseg.attribution.attention).
    captures_scores: ClassVar[bool] = True

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    # ----------------------------------------------------------------- discovery
    @classmethod
    @abc.abstractmethod
    def supports(cls, model: nn.Module) -> bool:
        """Whether this adapter understands ``model``."""

    @property
    @abc.abstractmethod
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the images the model was built for."""

    @property
    @abc.abstractmethod
    def in_chans(self) -> int: ...

    @property
    @abc.abstractmethod
    def num_classes(self) -> int: ...

    @property
    @abc.abstractmethod
    def stages(self) -> tuple[StageInfo, ...]: ...

    @property
    @abc.abstractmethod
    def default_cam_layer(self) -> str:
        """Module path whose output Grad-CAM uses by default."""

    @property
    def prefix_tokens(self) -> int:
        """Tokens before the patch grid in every block (class, distillation, register tokens)."""
        return 0

    def readout(self, batch: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
        """(B, N) weights of the tokens the classifier head reads after the last block (a row
        of one-hot class token, the mean of class and distillation tokens, or uniform over the
        patch tokens for average pooling); rollout starts from it. Global attention only."""
        raise NotImplementedError(f"{type(self).__name__} has no token readout")

    def convert_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``xaiseg train --init``: a state dict of this family in another layout (the original
        repository's, an older timm's, another input or window size) made to fit this model.
        The default keeps it as it is; the timm families use timm's own ``checkpoint_filter_fn``."""
        return state

    @classmethod
    def accepts_name(cls, name: str) -> bool:
        """Whether ``name`` (a timm model name given to ``xaiseg train --model``) builds a model
        of this family. Adapters for models not built by timm accept no name."""
        return False

    def blocks(self, stages: Sequence[int] | None = None) -> list[BlockInfo]:
        """Blocks of the given stages (all if None), in forward order."""
        chosen = range(len(self.stages)) if stages is None else self.check_stages(stages)
        return [b for s in chosen for b in self.stages[s].blocks]

    def check_stages(self, stages: Sequence[int]) -> list[int]:
        n = len(self.stages)
        out = sorted({int(s) for s in stages})
        if not out or out[0] < 0 or out[-1] >= n:
            raise ValueError(f"stages must be a non-empty subset of 0..{n - 1}, got {list(stages)}")
        return out

    def module(self, path: str) -> nn.Module:
        """The sub-module at a dotted path such as ``layers.3.blocks.1.norm1`` (negative
        indices allowed: ``layers.-1.blocks.-1.norm1``)."""
        mod: nn.Module = self.model
        for part in path.split("."):
            try:
                if part.lstrip("-").isdigit():
                    mod = mod[int(part)]  # type: ignore[index]
                else:
                    mod = getattr(mod, part)
            except (AttributeError, IndexError, TypeError, KeyError):
                raise ValueError(f"model has no module {path!r} (failed at {part!r})") from None
        return mod

    # ----------------------------------------------------------------- attention
    def capture(
        self,
        blocks: Sequence[BlockInfo],
        *,
        keep_scores: bool = False,
        reduce_probs: Callable[[torch.Tensor, BlockInfo], torch.Tensor] | None = None,
        keep_outputs: bool = False,
    ) -> "AttentionCapture":
        """A context manager recording, for each block, softmax(Z) (reduced by ``reduce_probs``
        as soon as it is produced, to save memory), with ``keep_scores`` Z itself and with
        ``keep_outputs`` softmax(Z) still attached to the autograd graph (to differentiate
        with respect to the attention probabilities). By default: forward hooks on each block's
        ``attention`` module read by :meth:`read_attention`, with :meth:`attention_switches` set."""
        return HookCapture(blocks, keep_scores, reduce_probs, keep_outputs, self.read_attention,
                           self.attention_switches(blocks))

    def read_attention(self, block: BlockInfo, args: tuple, out: Any) -> "tuple[torch.Tensor | None, torch.Tensor]":
        """(Z or None, A attached to the graph) from a call of ``block.attention``."""
        raise NotImplementedError(f"{type(self).__name__} does not capture attention")

    def attention_switches(self, blocks: Sequence[BlockInfo]) -> list[tuple[object, str, Any]]:
        """(object, attribute, value) to set for a capture pass and restore after it."""
        return []

    @abc.abstractmethod
    def windows_to_grid(self, values: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        """Per-token values in the block's window layout, shape (..., B·nW, N), to the token
        grid in the image frame, shape (..., B, H, W): windows reversed, padding cropped and
        the block's cyclic shift undone. Leading dimensions are kept (stack blocks that share
        window and shift to do them in one call)."""

    def grid_to_windows(self, values: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        """The inverse of :meth:`windows_to_grid`: per-token values on the token grid in the
        image frame, shape (..., B, H, W), to the block's window layout, shape (..., B·nW, N):
        the block's cyclic shift applied, the grid zero-padded to whole windows, windows
        partitioned in the order the model uses. Leading dimensions are kept."""
        raise NotImplementedError(f"{type(self).__name__} does not implement grid_to_windows")

    def split_merged(self, values: torch.Tensor, stage: StageInfo) -> torch.Tensor:
        """Per-token values on ``stage``'s grid, shape (..., B, h, w), moved down to the previous
        stage's grid, shape (..., B, H, W): each token's value is split equally over the tokens
        that were merged into it (the exact inverse of sum-pooling; shares that would go to
        padding tokens are dropped). Only for a stage whose ``merges_input`` is true."""
        raise NotImplementedError(f"{type(self).__name__} does not implement split_merged")

    @abc.abstractmethod
    def to_nchw(self, output: torch.Tensor, module_path: str) -> torch.Tensor:
        """A module's output as an (N, C, H, W) feature map on its token grid."""


class AttentionCapture(abc.ABC):
    """Hooks that are always removed and model flags that are always restored on exit."""

    records: list[AttentionRecord]

    @abc.abstractmethod
    def __enter__(self) -> "AttentionCapture": ...

    @abc.abstractmethod
    def __exit__(self, *exc: object) -> None: ...


# (block, hooked module's args, its output) -> (Z or None, A still attached to the graph)
Reader = Callable[[BlockInfo, tuple, Any], "tuple[torch.Tensor | None, torch.Tensor]"]


class HookCapture(AttentionCapture):
    """Forward hooks on each block's ``attention`` module; ``read`` picks Z and A out of the
    hooked call. ``switches`` are (object, attribute, value) set for the pass (fused attention
    off: a fused kernel never materialises softmax(Z)) and restored on exit."""

    def __init__(
        self,
        blocks: Sequence[BlockInfo],
        keep_scores: bool,
        reduce_probs: Callable[[torch.Tensor, BlockInfo], torch.Tensor] | None,
        keep_outputs: bool,
        read: Reader,
        switches: Sequence[tuple[object, str, Any]] = (),
    ) -> None:
        self.blocks = list(blocks)
        self.keep_scores = keep_scores
        self.keep_outputs = keep_outputs
        self.reduce_probs = reduce_probs
        self.read = read
        self.switches = list(switches)
        self.records = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._saved: list[tuple[object, str, Any]] = []

    def _hook(self, block: BlockInfo):
        def hook(_mod: nn.Module, args: tuple, out: Any) -> None:
            scores, probs = self.read(block, args, out)
            kept = probs.detach() if self.reduce_probs is None else self.reduce_probs(probs.detach(), block)
            self.records.append(
                AttentionRecord(
                    block,
                    probs=kept,
                    scores=scores if self.keep_scores else None,
                    outputs=probs if self.keep_outputs else None,
                )
            )

        return hook

    def __enter__(self) -> "HookCapture":
        self.records = []
        try:
            for obj, attr, value in self.switches:
                self._saved.append((obj, attr, getattr(obj, attr)))
                setattr(obj, attr, value)
            for b in self.blocks:
                self._handles.append(b.attention.register_forward_hook(self._hook(b)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for obj, attr, value in reversed(self._saved):
            setattr(obj, attr, value)
        self._saved.clear()
