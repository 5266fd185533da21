"""Reading and preparing the slices of the next batches in background threads, so the model
never waits for the disk, the NIfTI decoder or the brain mask (``--workers``).

Loading a slice is a pure function of the slice id, so the batches come back in order and equal
to loading them in the main thread; only *when* the work happens changes. The time the main
thread still waits for a batch is charged to the ``load`` stage (work done while the model ran
is not charged again: the stages keep summing to the run's wall time).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, TypeVar

from .timing import StageClock

T = TypeVar("T")


def prefetched(load_batch: Callable[[int], T], n_batches: int, workers: int, clock: StageClock,
               skip: Callable[[int], bool] = lambda b: False) -> Iterator[tuple[int, T]]:
    """``(b, load_batch(b))`` for every batch ``b < n_batches`` not ``skip``ped, in order; with
    ``workers`` > 0 up to ``workers`` batches are loaded ahead, each by one thread."""
    todo = [b for b in range(n_batches) if not skip(b)]
    if workers <= 0:
        for b in todo:
            yield b, load_batch(b)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xaiseg-load") as pool:
        ahead: deque[tuple[int, Future]] = deque()
        it = iter(todo)

        def submit() -> None:
            b = next(it, None)
            if b is not None:
                ahead.append((b, pool.submit(load_batch, b)))

        for _ in range(workers):
            submit()
        try:
            while ahead:
                b, fut = ahead.popleft()
                submit()
                with clock("load"):
                    loaded = fut.result()  # a loading error surfaces here, for the batch it belongs to
                yield b, loaded
        finally:
            for _, fut in ahead:
                fut.cancel()
