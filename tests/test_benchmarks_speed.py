"""Smoke test of benchmarks/speed.py with a tiny model: it runs, and its JSON is coherent."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_speed_script_runs_on_a_tiny_model(tmp_path):
    out = tmp_path / "speed.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), XAISEG_CACHE=str(tmp_path / "cache"))
    cmd = [
        sys.executable, str(ROOT / "tests" / "_speed_tiny.py"), "--batch-sizes", "1,2", "--repeats", "1",
        "--methods", "hgi-sam,swin-sam,no-such-method", "--json", str(out), "--device", "cpu",
        "--pipeline-slices", "20", "--pipeline-checkout", str(ROOT),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "skipping no-such-method" in res.stderr
    data = json.loads(out.read_text())
    names = {(r["name"], r["batch"]) for r in data["rows"]}
    assert names == {(n, b) for n in ("forward", "floor", "hgi-sam", "swin-sam") for b in (1, 2)}
    median = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1 : len(xs) // 2 + 1]) / 2
    for b in (1, 2):  # the ratios are the medians of the samples divided, recomputed here
        rows = {r["name"]: r for r in data["rows"] if r["batch"] == b}
        for r in rows.values():
            assert r["seconds_per_image"] == pytest.approx(median(r["samples"])) and r["seconds_per_image"] > 0
            assert r["ratio_to_floor"] == pytest.approx(r["seconds_per_image"] / rows["floor"]["seconds_per_image"])
            assert r["ratio_to_forward"] == pytest.approx(r["seconds_per_image"] / rows["forward"]["seconds_per_image"])
    assert "hgi-sam" in res.stdout and "x floor" in res.stdout
    # the whole pipeline on 20 slices of the built-in phantom, with the methods that exist, for the
    # installed xaiseg and a source tree beside it (this one: the same numbers)
    assert [p["checkout"] for p in data["pipeline"]] == ["installed", str(ROOT)]
    for pipe in data["pipeline"]:
        assert pipe["slices"] == 20 and pipe["methods"] == ["hgi-sam", "swin-sam"]
        assert {"load", "preprocess", "classify", "attribution", "metrics"} <= set(pipe["stage_s"])
        assert abs(sum(pipe["stage_s"].values()) - pipe["elapsed_s"]) < 1e-6
        assert pipe["process_wall_s"] >= pipe["elapsed_s"] > 0
    assert "whole pipeline" in res.stdout and "attribution" in res.stdout
    assert "summary.csv identical" in res.stdout


def test_cpu_peak_memory_sees_every_call():
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("speed_under_test", ROOT / "benchmarks" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = speed  # dataclasses look their module up while the class is built
    spec.loader.exec_module(speed)
    alloc = speed.Allocator()
    if not alloc.available:
        pytest.skip("needs glibc's mallopt")
    n = 40 * 2**20  # 160 MB of float32 temporaries, freed before the call returns: 160 blocks of
    # 1 MB, each below glibc's mmap threshold, so a heap-reusing allocator would hide them

    def hungry(x):
        blocks = [torch.ones(n // 160) for _ in range(160)]
        return float(sum(b[0] for b in blocks)) + float(x.sum())

    def light(x):
        return float(torch.ones(1000).sum())

    x = torch.zeros(1, 3, 8, 8)
    configs = {"light": light, "hungry": hungry}
    for _ in range(3):  # every measurement in the same process sees the peak again
        peaks = speed.peak_memory(configs, x, alloc)
        assert abs(peaks["hungry"] - 4 * n) < 0.1 * 4 * n, peaks
        assert peaks["light"] < 0.05 * 4 * n
    times, _ = speed.measure(configs, x, repeats=2, warmup=1, first_call="hungry")
    assert len(times["hungry"]) == 2 and min(times["hungry"]) > 0
