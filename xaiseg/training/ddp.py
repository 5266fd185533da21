"""What the training loop adds when torchrun starts several processes (DistributedDataParallel).

``--batch-size`` is the **global** batch: every optimiser step consumes the same draws as a
single-process run with that batch, dealt over the ranks (rank r takes draws r, r + N, ... of
each global batch), so the schedule, the learning rate and the recorded run do not depend on
how many processes trained it. DDP averages the ranks' gradients; each rank's loss (a mean
over its shard) is weighted by ``N * n_rank / n_global`` first, which makes that average the
gradient of the global batch's mean loss, also when the shards differ in size (a last batch
that does not divide by N). A rank whose shard is empty (a last batch of fewer than N draws)
still computes a loss, on the batch's first draw, weighted 0, so every rank joins the
gradient all-reduce of every step and none waits forever.

Rank 0 alone logs, validates and writes; the others train, take part in the collectives and
follow its decisions (stop early, or not).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ..distributed import World, rank_device
from ..errors import ConfigError

T = TypeVar("T")


def check_world(batch_size: int, device: str | None, world: World) -> torch.device:
    """This rank's device, after the checks a run on ``world`` needs before it takes ``--out``:
    every rank makes them alike, so they all stop with the same line and nothing is written."""
    if world.distributed and batch_size < world.size:
        raise ConfigError(f"--batch-size {batch_size} is the global batch, shared by {world.size} processes: "
                          f"give at least {world.size}")
    return rank_device(device, world)


def shard(batch: Sequence[T], world: World) -> tuple[list[T], int]:
    """This rank's draws of one global batch and how many of them count (see the module)."""
    part = list(batch[world.rank :: world.size])
    if part:
        return part, len(part)
    return list(batch[:1]), 0


def shard_size(batch_size: int, world: World) -> int:
    """How many draws of a global batch of ``batch_size`` this rank takes."""
    return len(range(world.rank, batch_size, world.size))


@dataclass
class ShardSampler:
    """One rank's batch sampler: its shard of every global batch of ``sampler``."""

    sampler: Any  # a batch sampler of global batches (sources.EpochSampler)
    world: World

    def __iter__(self) -> Iterator[list[Any]]:
        for batch in self.sampler:
            yield shard(batch, self.world)[0]

    def __len__(self) -> int:
        return len(self.sampler)

    def counts(self) -> list[int]:
        """Per step, how many of this rank's draws count (0 for a stand-in draw)."""
        return [shard(batch, self.world)[1] for batch in self.sampler]


def wrap(model: nn.Module, device: torch.device, world: World) -> nn.Module:
    """The module the loop calls forward on: ``model`` itself alone, else its DDP wrapper."""
    if not world.distributed:
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # No buffer broadcast before every forward: the families trained here (Swin, ViT, EVA) hold
    # no running statistics, only constant buffers (position indices, masks), so it would cost a
    # collective for nothing. DDP still copies rank 0's weights and buffers at construction.
    # (torch 2.14 renamed the option; torch >= 2.1 is supported.)
    new_name = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers" if new_name else "broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of rank ``rank`` > 0 (drop-path, dropout, loader seeds): one stream per rank."""
    return int(np.random.SeedSequence([int(seed), 7, int(rank)]).generate_state(1)[0])


def seed_rank(seed: int, world: World) -> None:
    """Give every rank but 0 its own torch random stream (rank 0 keeps a single process's)."""
    if world.rank > 0:
        torch.manual_seed(rank_seed(seed, world.rank))


def rng_state(device: torch.device) -> dict[str, Any]:
    """This rank's torch random state (CPU, and its GPU's), as resume.pt keeps it per rank."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def restore_rng(state: dict[str, Any], device: torch.device, world: World, seed: int, epoch: int) -> bool:
    """Set this rank's random state from resume.pt; False when the run had fewer ranks (then a
    seeded fresh stream, from ``(seed, rank, epoch)``, stands in)."""
    ranks = state.get("rank_rng") or [{"torch": state["torch_rng"], "cuda": state.get("cuda_rng")}]
    if world.rank >= len(ranks):
        torch.manual_seed(rank_seed(seed * 1_000_003 + epoch, world.rank))
        return False
    mine = ranks[world.rank]
    torch.set_rng_state(mine["torch"])
    if device.type == "cuda" and mine.get("cuda") is not None:
        torch.cuda.set_rng_state(mine["cuda"], device)
    return True


class NoLog:
    """The log of a rank other than 0: it writes nothing (rank 0 writes train.log)."""

    def __call__(self, msg: str) -> None:
        pass

    def release(self) -> None:
        pass
