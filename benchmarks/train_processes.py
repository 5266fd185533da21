"""Training throughput of one process against N processes (torchrun, DistributedDataParallel).

Both run the same ``xaiseg train`` command with the same global ``--batch-size`` and one torch
thread per process, on a small phantom written for the purpose (or ``--data DIR``); the
commands alternate, repeat by repeat, so background load hits both alike. Figures come from the
runs' own ``train_log.jsonl`` (``steps_per_s`` times only the optimiser steps, not validation):
median over epochs and repeats; samples/s = steps/s x the global batch.

    python benchmarks/train_processes.py                         # 1 vs 2 processes, 3 epochs
    python benchmarks/train_processes.py --train-on stream --processes 4 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a data set folder (default: a phantom written with the options below)")
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--train-on", choices=["disk", "stream"], default="disk",
                    help="disk: the folder's slices; stream: fresh phantom slices (validated on the folder)")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--batch-size", type=int, default=32, help="the global batch, the same for every run")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps-per-epoch", type=int, default=8, help="--train-on stream")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="data-loader processes per training process")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", help="also write the figures here")
    return ap.parse_args()


def _run(nproc: int, data: str, out: Path, a: argparse.Namespace) -> dict:
    launcher = ([sys.executable, "-m", "xaiseg"] if nproc == 1 else
                [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "xaiseg"])
    cmd = [*launcher, "train", "--data", data, "--train-on", a.train_on, "--model", a.model, "--epochs", str(a.epochs),
           "--batch-size", str(a.batch_size), "--steps-per-epoch", str(a.steps_per_epoch), "--patience", "0",
           "--threads", "1", "--workers", str(a.workers), "--device", "cpu", "--no-progress", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return {"steps_per_s": [r["steps_per_s"] for r in log], "epoch_s": [r["epoch_s"] for r in log], "wall_s": wall}


def main() -> None:
    a = _args()
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is None:
            data = str(Path(tmp) / "ph")
            subprocess.run([sys.executable, "-m", "xaiseg", "phantom", data, "--subjects", str(a.subjects), "--slices",
                            str(a.slices), "--size", str(a.size), "--quiet"], check=True)
        runs: dict[int, list[dict]] = {1: [], a.processes: []}
        for rep in range(a.repeats):
            for n in runs:
                runs[n].append(_run(n, data, Path(tmp) / f"r{n}-{rep}", a))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = {}
    print(f"global batch {a.batch_size}, {a.epochs} epochs, --train-on {a.train_on}, {a.model}, 1 thread per process, "
          f"--workers {a.workers}; load average at the end {load:.1f}")
    print(f"{'processes':>9}  {'steps/s':>8}  {'samples/s':>9}  {'steps/s per epoch':<28}  wall s")
    for n, rs in runs.items():
        sps = [v for r in rs for v in r["steps_per_s"]]
        med = statistics.median(sps)
        rows[n] = {"steps_per_s": med, "samples_per_s": med * a.batch_size, "per_epoch": sps,
                   "wall_s": [r["wall_s"] for r in rs]}
        per_epoch = " ".join(f"{v:.2f}" for v in sps)
        walls = " ".join(f"{r['wall_s']:.0f}" for r in rs)
        print(f"{n:>9}  {med:>8.3f}  {med * a.batch_size:>9.1f}  {per_epoch:<28}  {walls}")
    base = rows[1]["steps_per_s"]
    print(f"speed-up of {a.processes} processes: {rows[a.processes]['steps_per_s'] / base:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps({"options": vars(a), "load_average": load, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
