"""Schedules that depend only on the global step, so a resumed run continues exactly.

- :func:`lr_factor`: linear warm-up, then cosine decay to ``min_ratio`` of the base rate.
- :class:`Curriculum`: the phantom's lesion-size multiplier — hold a large size, shrink linearly
  to realistic (1.0), then stay realistic. Why: on 2 CPU cores a small Swin trained on realistic
  lesions alone stays at chance for hundreds of steps; learning "bright blob = ICH" on big
  lesions first and shrinking them gets it to high AUC (docs/training.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# The lesion-size curriculum of the phantom stream by default (run e10 of docs/training.md):
# lesions 3x their size for 15 % of the run, shrinking to realistic over the next 35 %.
DEFAULT_CURRICULUM = (3.0, 0.15, 0.35)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.01) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Curriculum:
    """Lesion scale as a function of the step: ``start`` for ``hold`` of the run, then a linear
    shrink to 1.0 over ``shrink`` of the run, then 1.0. ``start = 1`` switches it off."""

    start: float = 1.0
    hold: float = 0.0
    shrink: float = 0.0

    def __post_init__(self) -> None:
        if self.start < 1.0:
            raise ValueError(f"curriculum start scale must be >= 1 (1 = realistic lesions), got {self.start}")
        if not (0.0 <= self.hold and 0.0 <= self.shrink and self.hold + self.shrink <= 1.0):
            raise ValueError(f"curriculum fractions must be >= 0 and sum to <= 1, got hold={self.hold}, shrink={self.shrink}")

    @property
    def active(self) -> bool:
        return self.start > 1.0 and (self.hold + self.shrink) > 0.0

    def scale(self, step: int, total_steps: int) -> float:
        if not self.active:
            return 1.0
        f = step / max(1, total_steps)
        if f < self.hold:
            return self.start
        if self.shrink > 0 and f < self.hold + self.shrink:
            return self.start + (1.0 - self.start) * (f - self.hold) / self.shrink
        return 1.0

    def realism(self, step: int, total_steps: int) -> float:
        """0 while lesions are at ``start`` size, 1 once they are realistic (linear in between):
        how close the phantom stream's slice levels are to the benchmark's (see sources)."""
        if not self.active:
            return 1.0
        return (self.start - self.scale(step, total_steps)) / (self.start - 1.0)

    def end_step(self, total_steps: int) -> int:
        """First step at which lesions are realistic (early stopping starts counting there)."""
        return math.ceil((self.hold + self.shrink) * total_steps) if self.active else 0
