"""Smoke test of benchmarks/speed.py with a tiny model: it runs, and its JSON is coherent."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_speed_script_runs_on_a_tiny_model(tmp_path):
    out = tmp_path / "speed.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), XAISEG_CACHE=str(tmp_path / "cache"))
    cmd = [
        sys.executable, str(ROOT / "tests" / "_speed_tiny.py"), "--batch-sizes", "1,2", "--repeats", "1",
        "--methods", "hgi-sam,swin-sam,no-such-method", "--json", str(out), "--device", "cpu",
        "--pipeline-slices", "20",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "skipping no-such-method" in res.stderr
    data = json.loads(out.read_text())
    names = {(r["name"], r["batch"]) for r in data["rows"]}
    assert names == {(n, b) for n in ("forward", "floor", "hgi-sam", "swin-sam") for b in (1, 2)}
    for r in data["rows"]:
        assert r["seconds_per_image"] > 0
        if r["name"] == "floor":
            assert abs(r["ratio_to_floor"] - 1.0) < 1e-9
    assert "hgi-sam" in res.stdout and "x floor" in res.stdout
    # the whole pipeline on 20 slices of the built-in phantom, with the methods that exist
    pipe = data["pipeline"]
    assert pipe["slices"] == 20 and pipe["methods"] == ["hgi-sam", "swin-sam"]
    assert {"load", "preprocess", "classify", "attribution", "metrics"} <= set(pipe["stage_s"])
    assert abs(sum(pipe["stage_s"].values()) - pipe["elapsed_s"]) < 1e-6
    assert pipe["process_wall_s"] >= pipe["elapsed_s"] > 0
    assert "whole pipeline" in res.stdout and "attribution" in res.stdout
