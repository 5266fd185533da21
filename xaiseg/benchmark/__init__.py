"""The benchmark: every method's maps → masks → scores against ground truth (docs/design.md §3).

Library use::

    import xaiseg.benchmark as xb
    result = xb.run(data="physionet-ct-ich/", checkpoint="runs/tiny", methods="hgi-sam,gradcam")
    result.summary["methods"]["hgi-sam"]["metrics"]["dice"]["mean"]
    result.paths["summary_csv"]

The runner (torch and the methods) loads on first use, so the command line's help stays fast.
"""
from __future__ import annotations

from typing import Any

from .config import DEFAULT_METHODS, BenchmarkConfig

__all__ = ["BenchmarkConfig", "BenchmarkResult", "DEFAULT_METHODS", "run"]


def __getattr__(name: str) -> Any:
    if name == "run":
        from .runner import run

        return run
    if name == "BenchmarkResult":
        from .result import BenchmarkResult

        return BenchmarkResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
