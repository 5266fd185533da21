"""The numeric precision a training run computes in: what ``--precision auto`` means on a device.

Why bf16 on some CPUs: where the CPU has bf16 instructions (x86 AVX512-BF16 or AMX, Arm BF16),
bf16 autocast runs a ``tiny`` Swin step about 2.3 times as fast as fp32 (benchmarks/precision.py);
where it has none, torch emulates bf16 and is slower than fp32, so ``auto`` keeps fp32 there.
The weights, the optimiser and the saved checkpoint stay fp32 either way (autocast only lowers
the matrix products), and the maps of ``benchmark`` / ``explain`` are always computed in fp32.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 flags, Arm "Features"


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU lists bf16 instructions (Linux ``/proc/cpuinfo``; False where unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return bool(_BF16_FLAGS & set(value.split()))
    return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """fp32, bf16 or fp16: what ``requested`` (one of PRECISIONS) means on ``device``."""
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown --precision {requested!r}: use {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if requested == "auto":
        if cuda:
            return "bf16" if _cuda_has_bf16(device) else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
    if requested == "fp16" and not cuda:
        raise ConfigError(f"--precision fp16 needs a CUDA device (this run uses {device}); use bf16 or fp32")
    if requested == "bf16" and cuda and not _cuda_has_bf16(device):
        raise ConfigError(f"--precision bf16: {device} has no bf16 support; use fp16 or fp32")
    return requested


def _cuda_has_bf16(device: torch.device) -> bool:
    # not emulated: torch's default counts an emulated bf16 (pre-Ampere GPUs), slower than fp16
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def check_resume_precision(saved: dict[str, Any], saved_used: str | None, requested: str, device: torch.device) -> None:
    """``--resume`` continues in the arithmetic the interrupted run computed in (``saved``: its
    fingerprint; ``saved_used``: the precision its resume.pt records, None before it did). A run of
    an xaiseg without ``--precision`` had an ``amp`` flag, which autocast on CUDA only."""
    if saved_used is None:
        if "precision" in saved:
            saved_used = resolve_precision(saved["precision"], device)
        else:
            saved_used = resolve_precision("auto", device) if saved.get("amp", True) and device.type == "cuda" else "fp32"
    now = resolve_precision(requested, device)
    if now != saved_used:
        raise ConfigError(f"--resume: the interrupted run computed in {saved_used}, this one would in {now}; "
                          f"add --precision {saved_used}")


RESUME_PRECISION_KEYS = ("precision", "amp")  # compared by check_resume_precision, not as options


def autocast_factory(precision: str, device: torch.device) -> Callable[[], Any]:
    """A function returning the autocast context of a resolved ``precision`` (fp32: none)."""
    if precision == "fp32":
        return nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def describe(requested: str, device: torch.device) -> str:
    """The log's words for the precision ``requested`` resolves to on ``device``, saying why ``auto``
    chose it."""
    precision = resolve_precision(requested, device)
    if requested != "auto":
        return precision
    if device.type == "cuda":
        return f"{precision} autocast (CUDA)"
    if precision == "bf16":
        return "bf16 autocast (the CPU has bf16 instructions; --precision fp32 for full precision)"
    return "fp32 (the CPU has no bf16 instructions)" if device.type == "cpu" else "fp32"
