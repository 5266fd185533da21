"""Subject-wise folds: every slice of a subject lands in the same fold, so a threshold
calibrated on the other folds never saw the subject it is applied to."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import ConfigError


def subject_folds(subjects: Iterable[str], positive_subjects: Iterable[str], k: int, seed: int = 0) -> dict[str, int]:
    """subject → fold in ``range(k)``.

    Subjects with at least one hemorrhage-positive slice and those without are shuffled
    (seeded) and dealt round-robin separately, so each fold gets its share of positive
    subjects — the ones calibration and scoring depend on.
    """
    subjects = sorted(set(subjects))
    positive = set(positive_subjects)
    if k < 2:
        raise ConfigError(f"--folds must be at least 2, got {k}")
    n_pos = sum(s in positive for s in subjects)
    if n_pos < k:
        raise ConfigError(
            f"{k} subject-wise folds need at least {k} subjects with hemorrhage-positive slices, "
            f"the data has {n_pos}; lower --folds or use a per-map threshold (otsu, mean, fixed:T)"
        )
    rng = np.random.default_rng(seed)
    out: dict[str, int] = {}
    dealt = 0  # keep dealing where the positive subjects stopped, so fold sizes stay even
    for group in ([s for s in subjects if s in positive], [s for s in subjects if s not in positive]):
        for i in rng.permutation(len(group)):
            out[group[i]] = dealt % k
            dealt += 1
    return out
