"""Smoke test of benchmarks/metrics_speed.py on a few small slices: it runs, finds the old and
new metric bodies equal, and its JSON is coherent; bad options are a one-line error."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "metrics_speed.py"


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XAISEG_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)


def test_metrics_speed_script_runs_and_old_equals_new(tmp_path):
    out = tmp_path / "m.json"
    res = _run("--slices", "3", "--size", "96", "--repeats", "1", "--json", str(out), tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["slices"] == 3 and data["size"] == 96
    assert [r["metric"] for r in data["rows"]] == ["hd95", "auroc (brain region)", "dice_curve (99 thresholds)"]
    for r in data["rows"]:
        assert r["mismatches"] == 0
        assert r["old_ms_per_slice"] > 0 and r["new_ms_per_slice"] > 0
        assert abs(r["speedup"] - r["old_ms_per_slice"] / r["new_ms_per_slice"]) < 1e-9
    assert "speedup" in res.stdout and "hd95" in res.stdout


def test_metrics_speed_script_rejects_bad_options(tmp_path):
    res = _run("--slices", "0", tmp_path=tmp_path)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "--slices" in res.stderr
