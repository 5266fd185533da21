"""How many background workers a run uses when the user does not say: the benchmark's slice
loader threads and the trainer's data-loader processes."""
from __future__ import annotations

import os


def default_workers() -> int:
    """One background worker where there is a second core (it overlaps reading, decoding and
    preprocessing with the model), none on a single core (it would only compete with it)."""
    return 1 if (os.cpu_count() or 1) > 1 else 0
