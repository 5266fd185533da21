"""Attention rollout on Swin (``rollout``) and its gradient-weighted form (``grad-rollout``).

Exact definition (docs/design.md §2; docs/plugins.md has the long form). For each block b of the
used stages, Â_b is the block's token-to-token attention on its stage grid: block-diagonal over
windows in the block's shifted frame, each window's N×N matrix being

    rollout:       fuse_h(A)                  fuse = mean (default), max or min over heads
    grad-rollout:  mean_h(clamp(∇A ⊙ A, 0))   ∇A = ∂y/∂A (Chefer et al. 2021, eq. 5)

then optionally thinned (``discard_ratio``: per window, every entry ≤ the k-th smallest entry of
the N×N matrix is set to 0, k = ⌊ratio·N²⌋) and optionally row-renormalised. The block matrix
is R_b = a·I + (1−a)·Â_b. Starting from the uniform row vector over the tokens of the last used
stage (the classifier averages its final tokens), the relevance r is propagated backward,
``r ← r · R_b`` block by block, and across every patch merging each merged token's relevance is
split equally over its 2×2 parents. The map is r on the first used stage's grid, min–max
normalised per image, then bilinearly upsampled to the input size.

On a global-attention model (ViT: one window holding the prefix tokens and the whole grid) this
is Abnar & Zuidema's rollout: r starts from the adapter's readout row — the class token (timm
``global_pool="token"``; for the distilled DeiT the mean of the class and distillation tokens)
or the uniform row over the patch tokens (``"avg"``) — is propagated ``r ← r·R_b`` over all N
tokens, and ends on the patch tokens (the prefix tokens' share is dropped). grad-rollout there
is Chefer et al.'s generic rule ``R ← R + Ā_b·R`` from ``R = I`` read at the same row:
``I + Ā_b = 2·(0.5·I + 0.5·Ā_b)``, so with the default ``residual=0.5`` the two agree up to a
factor 2 per block, which the min–max removes.

Nothing of size T×T (T tokens on a grid) is ever formed on Swin: r · R_b is computed window by window
(shift, pad, partition r; one (1×N)·(N×N) product per window; reverse), so memory and time grow
with T·N, not T². Only the fused (B·nW, N, N) window matrix of each block is kept; heads are
reduced in the capture callback the moment softmax(Z) is produced.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

import xaiseg
from xaiseg import AttentionPass, AttentionRequest, Attribution, BlockInfo, minmax_normalize, shared_pass, upsample
from xaiseg.errors import ConfigError

_FUSIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean": lambda a: a.mean(dim=1),
    "max": lambda a: a.amax(dim=1),
    "min": lambda a: a.amin(dim=1),
}


def discard_lowest(mats: torch.Tensor, ratio: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Zero, in each (N, N) matrix of ``mats`` (M, N, N), every entry ≤ its k-th smallest entry,
    k = ⌊ratio·n²⌋ (ties at the cut are all discarded, so the result is order-independent).
    This is Abnar & Zuidema / jacobgil's ``discard_ratio`` applied per attention window.

    ``valid`` (M, N) marks the window's real tokens (timm pads grids that are not whole
    windows): only entries between real tokens are ranked and kept, and n counts real tokens."""
    if ratio <= 0.0:
        return mats
    n = mats.shape[-1]
    if valid is None:
        k = int(ratio * n * n)
        if k == 0:
            return mats
        flat = mats.reshape(*mats.shape[:-2], n * n)
        cut = flat.kthvalue(k, dim=-1, keepdim=True).values
        return torch.where(flat <= cut, torch.zeros_like(flat), flat).reshape(mats.shape)
    pair = (valid[:, :, None] & valid[:, None, :]).reshape(-1, n * n)
    flat = mats.reshape(-1, n * n)
    nv = valid.sum(dim=-1).to(torch.float64)
    k = torch.floor(ratio * nv * nv).long()  # per window: padded windows hold fewer real tokens
    ranked = flat.masked_fill(~pair, float("inf")).sort(dim=-1).values
    cut = ranked.gather(-1, (k - 1).clamp(min=0).unsqueeze(-1))
    keep = pair & ((flat > cut) | (k == 0).unsqueeze(-1))
    return torch.where(keep, flat, torch.zeros_like(flat)).reshape(mats.shape)


def renormalize_rows(mats: torch.Tensor) -> torch.Tensor:
    """Rows rescaled to sum 1 (all-zero rows stay zero)."""
    s = mats.sum(dim=-1, keepdim=True)
    return torch.where(s > 0, mats / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(mats))


class Rollout(Attribution):
    """Attention rollout: on Swin window-wise, shift-aware, merging-aware; on ViT from the
    readout row (class token or uniform over patches), prefix tokens dropped. Exact."""

    name = "rollout"
    description = "Attention rollout r·Π(a·I+(1−a)·Â_b); Swin window-wise and shift-aware, ViT from the class-token (or avg-pool) row"
    requires = (xaiseg.ATTENTION,)
    needs_gradients = False

    def __init__(
        self,
        model: Any,
        residual: float = 0.5,
        head_fusion: str = "mean",
        discard_ratio: float = 0.0,
        first_stage: int = 0,
        last_stage: int | None = None,
        renormalize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        n = len(self.adapter.stages)
        last = n - 1 if last_stage is None else int(last_stage)
        first = int(first_stage)
        if first < 0:
            first += n
        if last < 0:
            last += n
        if not 0 <= first <= last < n:
            raise ConfigError(f"need 0 <= first_stage <= last_stage < {n}, got first_stage={first_stage}, last_stage={last_stage}")
        if head_fusion not in _FUSIONS:
            raise ConfigError(f"head_fusion must be one of {', '.join(_FUSIONS)}, got {head_fusion!r}")
        if not 0.0 <= float(residual) <= 1.0:
            raise ConfigError(f"residual must lie in [0, 1], got {residual}")
        if not 0.0 <= float(discard_ratio) < 1.0:
            raise ConfigError(f"discard_ratio must lie in [0, 1), got {discard_ratio}")
        self.residual = float(residual)
        self.head_fusion = head_fusion
        self.discard_ratio = float(discard_ratio)
        self.renormalize = bool(renormalize)
        self.stages = list(range(first, last + 1))

    # The two methods differ only in how a block's heads become one window matrix.
    def attention_request(self) -> AttentionRequest:
        fuse = _FUSIONS[self.head_fusion]
        return AttentionRequest(self.adapter.blocks(self.stages), reduce_probs=lambda p, b: self._thin(fuse(p), b))

    def _window_matrices(self, run: AttentionPass) -> list[torch.Tensor]:
        return [r.probs for r in run.records]

    def _thin(self, mats: torch.Tensor, block: BlockInfo) -> torch.Tensor:
        """Discard and renormalise a block's (B·nW, N, N) window matrices over real tokens only:
        padding rows and columns drop out first (they never reach the grid), so a renormalised
        row sums to 1 over the tokens it can pass relevance to."""
        if self.discard_ratio <= 0.0 and not self.renormalize:
            return mats
        valid = None
        if block.padded_grid != block.grid:
            ones = torch.ones(1, *block.grid, device=mats.device)
            per_window = self.adapter.grid_to_windows(ones, block) > 0  # (nW, N); padding is 0
            valid = per_window.repeat(mats.shape[0] // per_window.shape[0], 1)  # b-major B·nW
            mats = mats * (valid[:, :, None] & valid[:, None, :])
        mats = discard_lowest(mats, self.discard_ratio, valid)
        return renormalize_rows(mats) if self.renormalize else mats

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        blocks = self.adapter.blocks(self.stages)
        mats = self._window_matrices(shared_pass(self, inputs, target))  # shared with other methods when run together
        r = self.propagate(mats, blocks, inputs.shape[0])
        # Subtract the minimum before leaving float64 so that the differences keep their digits.
        r = (r - r.amin(dim=(-2, -1), keepdim=True)).float()
        return upsample(minmax_normalize(r), tuple(inputs.shape[-2:]))

    def propagate(self, mats: list[torch.Tensor], blocks: list[BlockInfo], batch: int) -> torch.Tensor:
        """Relevance (B, H, W) on the first used stage's grid from the blocks' fused window
        matrices (B·nW, N, N), in forward order."""
        if xaiseg.SHIFTED_WINDOWS not in self.adapter.capabilities:
            return self._propagate_global(mats, blocks, batch)
        stages = self.adapter.stages
        grid = stages[self.stages[-1]].grid
        # Float64 for the vector only: the map is min–max of values that can differ from the
        # uniform start by little, so float32 rounding over many blocks would show (~1e-5).
        dtype = torch.float64 if mats[-1].device.type != "mps" else torch.float32
        r = torch.full((batch, *grid), 1.0 / (grid[0] * grid[1]), dtype=dtype, device=mats[-1].device)
        a = self.residual
        stage = self.stages[-1]
        for blk, mat in zip(reversed(blocks), reversed(mats)):
            while blk.stage < stage:  # crossed a patch merging going backward
                r = self.adapter.split_merged(r, stages[stage])
                stage -= 1
            rw = self.adapter.grid_to_windows(r, blk)  # (B·nW, N)
            y = torch.bmm(rw.unsqueeze(1), mat.to(rw.dtype)).squeeze(1)  # (1×N)·(N×N) per window
            r = a * r + (1.0 - a) * self.adapter.windows_to_grid(y, blk)
        return r

    def _propagate_global(self, mats: list[torch.Tensor], blocks: list[BlockInfo], batch: int) -> torch.Tensor:
        """Global attention: r over all N tokens (prefix included) from the readout row, one
        (1×N)·(N×N) product per image and block; the patch tokens' entries are the map."""
        dtype = torch.float64 if mats[-1].device.type != "mps" else torch.float32
        r = self.adapter.readout(batch, dtype=dtype, device=mats[-1].device)  # (B, N)
        a = self.residual
        for mat in reversed(mats):  # (B, N, N) each: one window per image
            r = a * r + (1.0 - a) * torch.bmm(r.unsqueeze(1), mat.to(r.dtype)).squeeze(1)
        return self.adapter.windows_to_grid(r, blocks[0])


class GradRollout(Rollout):
    """Gradient-weighted attention rollout (Chefer et al. 2021's head rule inside our rollout)."""

    name = "grad-rollout"
    description = "Rollout with per-block Â = mean_h(clamp(∂y/∂A ⊙ A, 0)) (Chefer et al. 2021); Swin window-wise, ViT from the class-token row"
    needs_gradients = True

    def __init__(self, model: Any, gradient: str = "probs", **options: Any) -> None:
        if "head_fusion" in options and options["head_fusion"] != "mean":
            raise ConfigError("grad-rollout always averages heads (Chefer's rule); head_fusion does not apply")
        options.pop("head_fusion", None)
        super().__init__(model, **options)
        if gradient not in ("probs", "scores"):
            raise ConfigError(f"gradient must be 'probs' (∂y/∂A, Chefer) or 'scores' (∂y/∂Z), got {gradient!r}")
        self.gradient = gradient

    def attention_request(self) -> AttentionRequest:
        # A must be whole (per head) until its gradient exists; autograd keeps softmax's output
        # for the backward anyway, so the detached reference costs no extra memory.
        probs: dict[str, torch.Tensor] = {}

        def keep(p: torch.Tensor, b: BlockInfo) -> torch.Tensor:
            probs[b.name] = p
            return p.new_empty(0)

        def combine(g: torch.Tensor, b: BlockInfo) -> torch.Tensor:
            return self._thin((g * probs.pop(b.name)).clamp(min=0).mean(dim=1), b)

        return AttentionRequest(self.adapter.blocks(self.stages), gradients=True, reduce_probs=keep,
                                reduce_grads=combine, wrt=self.gradient)

    def _window_matrices(self, run: AttentionPass) -> list[torch.Tensor]:
        assert run.grads is not None
        return run.grads
