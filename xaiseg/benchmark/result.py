"""What :func:`xaiseg.benchmark.run` returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import table


@dataclass
class BenchmarkResult:
    """The summary (plain dicts/lists/floats, as in summary.json), the paths written, the
    output folder, run.json's config and this attempt's timing."""

    summary: dict[str, Any]
    paths: dict[str, Path]
    out: Path
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)  # run.json's "timing": seconds per stage, slices/s

    def table(self) -> str:
        return table(self.summary)
