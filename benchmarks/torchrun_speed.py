"""Throughput of ``xaiseg benchmark`` in one process against N processes started by torchrun.

Each configuration runs as a user runs it, in fresh processes (``python -m xaiseg benchmark``,
and ``python -m torch.distributed.run --standalone --nproc-per-node N -m xaiseg benchmark``),
each process with ``--threads`` threads (OMP_NUM_THREADS), interleaved repeat by repeat so
background load hits all alike; per configuration the repeat with the median wall time. Prints
slices/s (run.json's timing: the slices of the run over rank 0's elapsed time), the process
wall time (interpreter start, imports, data and model opening included) and whether every
summary.csv equals the single-process one.

    python benchmarks/torchrun_speed.py --size 512 --processes 1,2 --threads 1 --limit 48
    python benchmarks/torchrun_speed.py --data physionet-ct-ich/ --processes 1,2,4 --device cpu
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from xaiseg.benchmark.report import summary_numbers


def one_run(processes: int, threads: int, data: str | None, limit: int | None, device: str, out: str) -> dict:
    """run.json's timing of one run with ``processes`` processes, plus its wall time and summary.csv."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    head = [sys.executable, "-m", "xaiseg"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), "-m", "xaiseg"]
    cmd = head + ["benchmark", "--out", out, "--device", device, "--no-figures"]
    cmd += ["--data", data] if data else []
    cmd += ["--limit", str(limit)] if limit else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    with open(os.path.join(out, "run.json")) as fh:
        timing = json.load(fh)["timing"]
    with open(os.path.join(out, "summary.csv")) as fh:
        cells = summary_numbers(fh.read())
    return {"processes": processes, "threads": threads, "process_wall_s": wall, "elapsed_s": timing["elapsed_s"],
            "slices": timing["slices"], "slices_per_s": timing["slices_per_s"], "stage_s": timing["stage_s"],
            "summary": cells}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="1,2", help="comma-separated numbers of processes (default 1,2)")
    ap.add_argument("--threads", type=int, default=1, help="threads per process (OMP_NUM_THREADS, default 1)")
    ap.add_argument("--data", default=None, help="data folder (default: a phantom written at --size)")
    ap.add_argument("--size", type=int, default=512, help="slice size of the phantom written when no --data (default 512)")
    ap.add_argument("--limit", type=int, default=48, help="slices scored (0: all; default 48)")
    ap.add_argument("--device", default="cpu", help="--device of every run (default cpu; auto: cuda:LOCAL_RANK)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs per configuration (median)")
    ap.add_argument("--json", dest="json_path", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = os.path.join(tmp, "phantom")
            subprocess.run([sys.executable, "-m", "xaiseg", "phantom", data, "--size", str(args.size)], check=True,
                           capture_output=True)
        runs: dict[int, list[dict]] = {n: [] for n in counts}
        for r in range(args.repeats):
            for n in counts:
                runs[n].append(one_run(n, args.threads, data, args.limit or None, args.device,
                                       os.path.join(tmp, f"run-{n}-{r}")))
    best = [sorted(rs, key=lambda t: t["process_wall_s"])[len(rs) // 2] for rs in runs.values()]
    ref = best[0]["summary"]
    print(f"xaiseg benchmark on {args.data or f'a phantom at {args.size}²'}, {best[0]['slices']} slices, "
          f"{args.threads} thread(s) per process, device {args.device}")
    print(f"{'processes':>9}  {'slices/s':>8}  {'elapsed s':>9}  {'process wall s':>14}  summary.csv")
    for t in best:
        same = "same" if t["summary"] == ref else "DIFFERS"
        print(f"{t['processes']:>9}  {t['slices_per_s']:>8.3f}  {t['elapsed_s']:>9.1f}  {t['process_wall_s']:>14.1f}  {same}")
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump([{k: v for k, v in t.items() if k != "summary"} for t in best], fh, indent=2)
    return 0 if all(t["summary"] == ref for t in best) else 1


if __name__ == "__main__":
    sys.exit(main())
