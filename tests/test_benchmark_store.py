"""The resumable journal: only complete (method, batch) units survive a crash; floats round-trip."""
from __future__ import annotations

import numpy as np

from xaiseg.benchmark.store import RunStore, fmt, safe_name

COLS = ["method", "slice_id", "value"]


def _store(tmp_path):
    # slices 0..5 in batches of two
    return RunStore(tmp_path, COLS, {i: i // 2 for i in range(6)})


def _unit(store, method, batch, value=0.1):
    ids = [2 * batch, 2 * batch + 1]
    store.write_unit(method, batch, {"maps": np.full((2, 3, 3), batch, np.float16)},
                     [{"method": method, "slice_id": i, "value": value * i} for i in ids])


def test_recover_keeps_exactly_the_complete_units(tmp_path):
    s = _store(tmp_path)
    s.start()
    _unit(s, "a", 0)
    _unit(s, "a", 1)
    _unit(s, "b", 0)
    s.cache_file("a", 1).unlink()  # rows written but its maps lost: recompute
    _unit(s, "b", 2)
    lines = s.csv_path.read_text().splitlines(True)
    s.csv_path.write_text("".join(lines[:-1]) + lines[-1][:5])  # the last unit's 2nd row cut short
    done = s.recover(["a", "b"], list(range(6)))
    assert done == {("a", 0), ("b", 0)}
    rows = s.read_rows()
    assert [(r["method"], r["slice_id"]) for r in rows] == [("a", "0"), ("a", "1"), ("b", "0"), ("b", "1")]
    np.testing.assert_array_equal(s.load_unit("b", 0, "maps"), np.zeros((2, 3, 3), np.float16))


def test_floats_round_trip_exactly_and_names_are_safe():
    for v in (0.1, 1 / 3, 1e-300, 123456.789, float("nan")):
        assert fmt(v) == "nan" or float(fmt(v)) == v
    assert fmt(True) == "1" and fmt(None) == ""
    assert safe_name("hgi-sam") == "hgi-sam"
    assert safe_name("captum:Saliency").startswith("captum_Saliency-")
    assert safe_name("a:b") != safe_name("a_b")
