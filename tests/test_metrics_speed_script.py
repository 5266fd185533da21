"""Smoke test of benchmarks/metrics_speed.py on a few small slices: it runs, finds the old and
new metric bodies equal, and its JSON is coherent; bad options are a one-line error."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "metrics_speed.py"


def _script():
    spec = importlib.util.spec_from_file_location("_metrics_speed_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_metrics_speed_script_runs_and_old_equals_new(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert _script().main(["--slices", "3", "--size", "96", "--repeats", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["slices"] == 3 and data["size"] == 96
    assert [r["metric"] for r in data["rows"]] == ["hd95", "auroc (brain region)", "dice_curve (99 thresholds)"]
    for r in data["rows"]:
        assert r["mismatches"] == 0
        assert r["old_ms_per_slice"] > 0 and r["new_ms_per_slice"] > 0
        assert abs(r["speedup"] - r["old_ms_per_slice"] / r["new_ms_per_slice"]) < 1e-9
    printed = capsys.readouterr().out
    assert "speedup" in printed and "hd95" in printed


def test_metrics_speed_script_rejects_bad_options(capsys):
    assert _script().main(["--slices", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "--slices" in err
