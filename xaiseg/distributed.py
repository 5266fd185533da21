"""Processes started by ``torchrun``: who this process is, its device, and the process group.

``torchrun --nproc-per-node N -m xaiseg <command>`` starts N copies of the command with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous address) in their environment.
Without torchrun those variables are absent and every helper here describes a world of one
process, so a single-process run never creates a process group and behaves as before.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from .errors import ConfigError, XaisegError

__all__ = ["LostPeerError", "World", "broadcast_from_main", "current_world", "gather_to_main", "lost_peer",
           "on_main", "process_group", "quiet_unless_main", "rank_device", "sum_over_ranks"]

T = TypeVar("T")
_EVERY_RANK = "_xaiseg_raised_on_every_rank"


class LostPeerError(XaisegError):
    """A collective failed because another process of the run stopped (or hung): one line here,
    the cause is that process's own error."""


@dataclass(frozen=True)
class World:
    """This process's place among the ones torchrun started (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, validates and writes the outputs."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer; "
                          "start several processes with torchrun, which sets it") from None


def current_world() -> World:
    """The world torchrun described in the environment, or a world of one process."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    local_size = _env_int("LOCAL_WORLD_SIZE", size)
    if size < 1 or not 0 <= rank < size or not 0 <= local_rank < max(local_size, 1):
        raise ConfigError(f"inconsistent torchrun environment (RANK={rank}, WORLD_SIZE={size}, "
                          f"LOCAL_RANK={local_rank}); start the processes with torchrun")
    return World(rank, size, local_rank, local_size)


def rank_device(device: str | torch.device | None, world: World) -> torch.device:
    """The device of this process. ``auto`` (or None): ``cuda:LOCAL_RANK`` where CUDA is
    available, else the CPU. ``cuda`` without an index means this process's own GPU; an explicit
    ``cuda:K`` is taken as given (one process per node only: several would share one GPU)."""
    from .training.checkpoint import resolve_device

    dev = resolve_device(device)
    if dev.type != "cuda" or not world.distributed:
        return dev
    if dev.index is not None and world.local_size > 1:
        raise ConfigError(f"--device {dev} would put all {world.local_size} processes of this machine on one GPU; "
                          "use --device auto or cuda (each process takes cuda:LOCAL_RANK)")
    n = torch.cuda.device_count()
    if world.local_rank >= n:
        raise ConfigError(f"this machine has {n} GPU(s) but torchrun started {world.local_size} processes on it; "
                          f"use --nproc-per-node {n} (or --device cpu)")
    return torch.device("cuda", world.local_rank if dev.index is None else dev.index)


@contextlib.contextmanager
def process_group(world: World, device: torch.device, timeout_s: float = 1800.0) -> Iterator[None]:
    """The default process group for the length of a command (nothing without torchrun).

    CPU tensors and Python objects travel over gloo; CUDA tensors over NCCL when the device is a
    GPU. The group is destroyed on the way out, also after an error, so no rank hangs at exit.
    """
    if not world.distributed:
        yield
        return
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    try:
        yield
    except BaseException as exc:
        if getattr(exc, _EVERY_RANK, False):  # on_main's error: every rank is here, none exits first
            with contextlib.suppress(LostPeerError), _peers(world):  # its own error, not a lost peer, is what to say
                dist.barrier()
        raise
    else:
        with _peers(world):  # no rank closes its connections while another still reads from them (gloo aborts)
            dist.barrier()
    finally:
        dist.destroy_process_group()


def gather_to_main(obj: Any, world: World) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0 (None on the others); ``[obj]`` alone."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] | None = [None] * world.size if world.is_main else None
    with _peers(world):
        dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank (what the others pass is ignored)."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj if world.is_main else None]
    with _peers(world):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(values: Sequence[float], world: World) -> list[float]:
    """The element-wise sum of every rank's ``values``, on every rank (``values`` alone).

    Summed in float64 on the CPU (gloo, also beside NCCL): a few scalars per call, e.g. a
    training step's loss and batch size, where every rank must reach the same decision."""
    if not world.distributed:
        return [float(v) for v in values]
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    with _peers(world):
        dist.all_reduce(t)
    return t.tolist()


@contextlib.contextmanager
def _peers(world: World) -> Iterator[None]:
    """A collective whose backend fails because another process died or hangs: that one prints
    the cause, this one a :class:`LostPeerError` line rather than the backend's traceback
    (``XAISEG_DEBUG=1`` shows it, chained). Any other error passes unchanged."""
    try:
        yield
    except RuntimeError as exc:
        lost = lost_peer(exc, world, None)
        if lost is None:
            raise
        raise lost from exc


def _travels(exc: BaseException) -> BaseException:
    """``exc`` itself if it survives pickling (our one-line errors do), else its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - whatever fails to pickle travels as its message
        return RuntimeError(str(exc) or type(exc).__name__)


def on_main(fn: Callable[[], T], world: World) -> T | None:
    """``fn()`` run by rank 0 alone (its value there, None on the others). An error it raises is
    raised on every rank, so a refusal on rank 0 (a bad ``--out``) is the same one-line error
    and exit status everywhere and no rank waits for rank 0 in a later collective."""
    if not world.distributed:
        return fn()
    value: T | None = None
    error: BaseException | None = None
    if world.is_main:
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - every error must reach the other ranks
            error = exc
    shared = broadcast_from_main(None if error is None else _travels(error), world)
    if shared is not None:
        error = error if error is not None else shared
        setattr(error, _EVERY_RANK, True)  # process_group lets the ranks leave together
        raise error
    return value


@contextlib.contextmanager
def quiet_unless_main(world: World) -> Iterator[None]:
    """Rank 0 alone prints (progress, warnings, tables): the others' stdout and stderr go nowhere
    inside the block. An error leaving the block is still printed by the caller, on every rank."""
    if world.is_main:
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield


# What gloo and NCCL say when the other end of a collective went away or never answered; torch
# raises these as plain RuntimeErrors (DistError and its subclasses in newer versions).
_PEER_SIGNS = ("gloo", "NCCL", "Connection reset by peer", "Connection closed by peer")


def lost_peer(exc: BaseException, world: World, resumable: bool | None) -> LostPeerError | None:
    """``exc`` as a one-line :class:`LostPeerError` when it is a collective that lost another
    process, else None (an error of this process keeps its traceback). ``resumable``: whether
    ``--resume`` can continue (None: this process cannot tell, its ``--out`` is rank 0's)."""
    import torch.distributed as dist

    kinds = (dist.DistError,) if hasattr(dist, "DistError") else ()
    text = str(exc).strip()
    if not world.distributed or not isinstance(exc, RuntimeError):
        return None
    if not (isinstance(exc, kinds) or any(sign in text for sign in _PEER_SIGNS)):
        return None
    first = text.splitlines()[0] if text else type(exc).__name__
    if first.startswith("[") and "] " in first:  # gloo prefixes its source file and line
        first = first.split("] ", 1)[1]
    first = first.split(". ", 1)[0]
    then = {True: "then continue the run with the same command and --resume",
            False: "then run the command again",
            None: "then run the same command again (with --resume to continue from what was saved)"}[resumable]
    return LostPeerError(f"process {world.rank} of {world.size} stopped: another process of the run failed or was "
                         f"killed ({first}); see its own error or torchrun's summary, {then}")
