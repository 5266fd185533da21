"""Which slices a run scores: positives only, balanced negatives, an evenly spread limit."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from xaiseg.benchmark.select import select_ids as _select
from xaiseg.errors import ConfigError, DataError


def _records(pattern):
    return [SimpleNamespace(subject=f"{i // 4:03d}", slice=i % 4 + 1, labels=(0, 0, 0, 0, 0, float(p)))
            for i, p in enumerate(pattern)]


def test_selection_rules():
    recs = _records([0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0])  # 3 positives, 9 negatives
    assert _select(recs, False, None) == list(range(12))
    assert _select(recs, True, None) == [1, 2, 8]
    picked = _select(recs, False, None, negative_ratio=1.0)
    assert [i for i in picked if recs[i].labels[-1]] == [1, 2, 8] and len(picked) == 6
    negs = [i for i in picked if not recs[i].labels[-1]]
    assert negs[0] == 0 and negs[-1] == 11  # spread over the whole data set, first to last
    assert len(_select(recs, False, None, negative_ratio=0.0)) == 3
    assert _select(recs, False, 4) == [0, 4, 7, 11]
    with pytest.raises(ConfigError, match="--limit"):
        _select(recs, False, 0)
    with pytest.raises(ConfigError, match="--negative-ratio"):
        _select(recs, False, None, negative_ratio=-1)
    with pytest.raises(DataError, match="no hemorrhage-positive"):
        _select(_records([0, 0]), True, None)
