"""HGI-SAM (head-wise gradient-infused self-attention maps) and its attention-only ancestor
Swin-SAM, following docs/design.md §2 (Rasoulian, Salari & Xiao, MELBA 2023 / MLCN 2022).

Per block b of a used stage, with A = softmax(Z) and G = ∂y/∂Z of shape (B·nW, h, N, N):

    w[n, h]  = ||G[n, h]||_F                        (HGI-SAM; 1 for Swin-SAM)
    t[n, j]  = mean_i mean_h w[n, h] · A[n, h, i, j]

Because t is linear in A, each block's A is reduced to its query mean (B·nW, h, N) the moment
it is produced and G to its norms (B·nW, h): nothing of size N² outlives the forward/backward.
The blocks of a stage are then processed together (window reverse and shift undo per group of
equal shift, pair products and their mean as tensor ops).

On a global-attention model (ViT) there are no stages, shifts or pairs; xaiseg's *extension*
(not the published method, docs/methods.md) keeps the per-block rule above — head weights
``||∂y/∂Z||_F``, key saliency averaged over every query row — restricts the keys to the patch
tokens (prefix tokens dropped) and takes the mean over the chosen ``blocks`` (default: all) of
the block maps, min–max normalised per image.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

import xaiseg
from xaiseg import AttentionRequest, Attribution, BlockInfo, minmax_normalize, shared_pass, upsample
from xaiseg.errors import ConfigError


def _query_mean(probs: torch.Tensor, _block: BlockInfo) -> torch.Tensor:
    return probs.mean(dim=-2)  # (B·nW, h, N): mean over query rows i


def _head_query_mean(probs: torch.Tensor, _block: BlockInfo) -> torch.Tensor:
    return probs.mean(dim=(1, 2)).unsqueeze(1)  # (B·nW, 1, N): heads and queries in one reduction


def _frobenius(grads: torch.Tensor, _block: BlockInfo) -> torch.Tensor:
    return torch.linalg.vector_norm(grads, dim=(-2, -1))  # (B·nW, h)


class HGISAM(Attribution):
    """Head-wise gradient-infused self-attention maps (HGI-SAM) of a Swin classifier; on a ViT,
    xaiseg's extension over a chosen set of blocks."""

    name = "hgi-sam"
    description = "Self-attention weighted per head by ||∂y/∂Z||_F; Swin: shifted-pair products over stages (HGI-SAM), ViT: mean over blocks (extension)"
    requires: tuple[str, ...] = (xaiseg.ATTENTION,)
    needs_gradients = True
    default_stages: tuple[int, ...] = (0, 1, 2)

    def __init__(self, model: Any, stages: Sequence[int] | None = None, blocks: Sequence[int] | None = None,
                 **options: Any) -> None:
        super().__init__(model, **options)
        self.paired = xaiseg.SHIFTED_WINDOWS in self.adapter.capabilities
        if stages is None:  # the paper's stages 1–3, as many of them as a smaller model has
            stages = tuple(s for s in self.default_stages if s < len(self.adapter.stages))
        self.stages = self.adapter.check_stages(stages)
        self.block_ids = None if blocks is None else self._check_blocks(blocks)

    def _check_blocks(self, blocks: Sequence[int]) -> list[int]:
        if self.paired:
            raise ConfigError("blocks= is for global-attention models (ViT); on Swin choose stages=")
        n = len(self.adapter.blocks())
        out = sorted({int(b) + n if int(b) < 0 else int(b) for b in blocks})
        if not out or out[0] < 0 or out[-1] >= n:
            raise ConfigError(f"blocks must be a non-empty subset of 0..{n - 1} (negative counts from the end), got {list(blocks)}")
        return out

    def _chosen_blocks(self) -> list[BlockInfo]:
        blocks = self.adapter.blocks(self.stages)
        return blocks if self.block_ids is None else [blocks[i] for i in self.block_ids]

    def attention_request(self) -> AttentionRequest:
        blocks = self._chosen_blocks()
        if self.needs_gradients:
            return AttentionRequest(blocks, gradients=True, reduce_probs=_query_mean, reduce_grads=_frobenius)
        return AttentionRequest(blocks, reduce_probs=_head_query_mean)

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None, brain_mask: torch.Tensor | None = None) -> torch.Tensor:
        blocks = self._chosen_blocks()
        run = shared_pass(self, inputs, target)  # shared with other methods when run together
        size = tuple(inputs.shape[-2:])
        out: torch.Tensor | None = None
        start = 0
        for s in self.stages:  # a handful of stages; everything inside a stage is batched
            stage_blocks = [b for b in blocks if b.stage == s]
            end = start + len(stage_blocks)
            probs = torch.stack([r.probs for r in run.records[start:end]])  # (K, B·nW, h, N)
            if run.grads is not None:
                w = torch.stack(run.grads[start:end])  # (K, B·nW, h)
                t = (w.unsqueeze(-1) * probs).mean(dim=2)
            else:
                t = probs.mean(dim=2)
            stage_map = upsample(_normalize_stage(self._stage_map(t, stage_blocks)), size)
            out = stage_map if out is None else out * stage_map
            start = end
        assert out is not None
        if brain_mask is not None:
            out = out * _mask_like(brain_mask, out)
        return minmax_normalize(out)

    def _stage_map(self, t: torch.Tensor, blocks: Sequence[BlockInfo]) -> torch.Tensor:
        """(K, B·nW, N) key saliencies of a stage's K blocks → (B, H, W) stage map."""
        groups: dict[tuple, list[int]] = {}
        for k, b in enumerate(blocks):
            groups.setdefault((b.window, b.shift), []).append(k)
        grids = [torch.empty(0)] * len(blocks)
        for idx in groups.values():  # one call per distinct (window, shift): 1 or 2 per stage
            g = self.adapter.windows_to_grid(t[idx], blocks[idx[0]])
            for j, k in enumerate(idx):
                grids[k] = g[j]
        maps = torch.stack(grids)  # (K, B, H, W)
        if not self.paired:  # the ViT extension: no shifted partner, the blocks' mean
            return maps.mean(dim=0)
        k = maps.shape[0]
        pairs = maps[0 : k - 1 : 2] * maps[1:k:2]  # (regular, shifted) neighbours
        if k % 2:
            # An odd block count (never met by the reference models) keeps its last block alone.
            pairs = torch.cat([pairs, maps[-1:]])
        return pairs.mean(dim=0)


class SwinSAM(HGISAM):
    """Swin self-attention maps (attention only, plain head mean, all stages; Swin-SAM)."""

    name = "swin-sam"
    description = "Swin self-attention maps, plain head mean, shifted-pair products over all stages (Swin-SAM)"
    requires = (xaiseg.ATTENTION, xaiseg.SHIFTED_WINDOWS)
    needs_gradients = False
    withheld_options = ("blocks",)  # Swin only: stages, never ViT blocks

    def __init__(self, model: Any, stages: Sequence[int] | None = None, **options: Any) -> None:
        if stages is None:
            n = len(xaiseg.get_adapter(model).stages)
            stages = tuple(range(n))
        super().__init__(model, stages=stages, **options)


def _normalize_stage(maps: torch.Tensor) -> torch.Tensor:
    """Per-image min–max of (B, h, w) stage maps, a constant one becoming ones, not zeros.

    A stage whose map does not vary (a 1×1 last stage of a small input, or no gradient at all)
    cannot localise anything; as zeros it would wipe out the product of the other stages, so it
    is the product's neutral element instead. (docs/design.md's "constant → zeros" is about the final
    map, which stays so.)"""
    out = minmax_normalize(maps)
    constant = (out.reshape(out.shape[0], -1) == 0).all(dim=1)  # min–max leaves 0…1 otherwise
    return torch.where(constant[:, None, None], torch.ones_like(out), out)


def _mask_like(mask: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(mask, device=maps.device).float()
    if m.dim() == 2:
        m = m.expand_as(maps)
    if tuple(m.shape) != tuple(maps.shape):
        raise ValueError(f"brain_mask must have shape {tuple(maps.shape)} or {tuple(maps.shape[1:])}, got {tuple(m.shape)}")
    return m
