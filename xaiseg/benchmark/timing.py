"""Where a benchmark run spends its time: wall seconds accumulated per pipeline stage.

The stages (in pipeline order) are the ones a user can act on: opening the data set (and, on
the first default run, generating the phantom), loading the classifier, importing and setting up the
methods (their packages: captum, grad-cam, ...), reading slices from disk,
turning them into model inputs (brain mask, windowing, resizing, normalisation), the
classifier's detection forward, each method's ``attribute()``, scoring the maps, writing the
per-slice store, and the closing work (thresholds, summary, figures, NIfTI maps).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch

STAGES = ("open data", "load model", "load methods", "load", "preprocess", "classify", "attribution", "metrics", "store", "thresholds", "figures", "maps", "report")


class StageClock:
    """Accumulates wall time per stage. ``device``: a CUDA device is synchronised at both ends
    of a timed stage, so asynchronous kernels are charged to the stage that launched them."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, dict[str, int]] = {}  # e.g. shared_attention: passes, forwards_saved, ...
        self._cuda = device is not None and device.type == "cuda"
        self._device = device

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self._cuda:
            torch.cuda.synchronize(self._device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self._cuda:
                torch.cuda.synchronize(self._device)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def count(self, group: str, counts: dict[str, int]) -> None:
        """Add ``counts`` to the totals of ``group`` (reported in run.json's ``timing``)."""
        totals = self.counts.setdefault(group, {})
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + int(v)

    def report(self, elapsed_s: float, n_slices: int, n_maps: int) -> dict:
        """run.json's ``timing``: seconds and share per stage, the untimed rest ("other": the data
        fingerprint, reading the stored rows and curves back, run bookkeeping), and throughput
        of this attempt (``n_slices`` / ``n_maps`` it computed: a resumed run skips the rest), and
        each group of :meth:`count` (``shared_attention``: the attention passes methods shared,
        the forwards and backwards that sharing saved)."""
        stages = {s: self.seconds[s] for s in STAGES if s in self.seconds}
        stages.update({s: v for s, v in self.seconds.items() if s not in stages})
        other = max(0.0, elapsed_s - sum(stages.values()))
        stages["other"] = other
        return {
            **{g: dict(c) for g, c in self.counts.items()},
            "elapsed_s": elapsed_s,
            "stage_s": stages,
            "stage_share": {s: (v / elapsed_s if elapsed_s > 0 else 0.0) for s, v in stages.items()},
            "slices": n_slices,
            "slices_per_s": n_slices / elapsed_s if elapsed_s > 0 else None,
            "maps_per_s": n_maps / elapsed_s if elapsed_s > 0 else None,
        }


def format_timing(timing: dict) -> str:
    """One line for the terminal: throughput, then the stages that took at least 1 %."""
    parts = [f"{s} {100 * f:.0f}%" for s, f in sorted(timing["stage_share"].items(), key=lambda kv: -kv[1]) if f >= 0.01]
    rate = timing.get("slices_per_s")
    head = f"{timing['slices']} slices in {timing['elapsed_s']:.1f} s"
    if rate:
        head += f" ({rate:.2f} slices/s, {timing['maps_per_s']:.1f} maps/s)"
    return head + ": " + ", ".join(parts)
