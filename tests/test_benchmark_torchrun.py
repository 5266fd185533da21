"""``torchrun -m xaiseg benchmark`` over two gloo processes, started as a user starts them: its
result files equal a single-process run's cell by cell (timing columns aside), also after one
rank was killed and the command resumed, and a refusal on rank 0 is every rank's one line."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from xaiseg.benchmark import run
from xaiseg.errors import ConfigError

from .benchmark_helpers import make_assets

# 8 batches of 2: each rank owns 4, two methods: 8 units per shard
OPTIONS = dict(methods=["swin-sam", "centre-prior"], threshold="grid", folds=2, batch_size=2, limit=16)
COMPARED = ("slices.csv", "summary.csv", "summary_by_subject.csv", "summary_by_subtype.csv")
TIMING = ("map_seconds", "wall_time_s")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory, "torchrun")


@pytest.fixture(scope="module")
def reference(assets, tmp_path_factory) -> Path:
    """The single-process run, with one thread as each torchrun process has (OMP_NUM_THREADS=1)."""
    data, ckpt = assets
    out = tmp_path_factory.mktemp("reference") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(data=data, checkpoint=ckpt, out=out, figures=False, progress=False, **OPTIONS)
    finally:
        torch.set_num_threads(threads)
    return out


def _command(assets, out: Path, *extra: str) -> list[str]:
    data, ckpt = assets
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--tee", "3",
            "-m", "xaiseg", "benchmark", "--data", str(data), "--checkpoint", str(ckpt), "--out", str(out),
            "--methods", ",".join(OPTIONS["methods"]), "--threshold", OPTIONS["threshold"],
            "--folds", str(OPTIONS["folds"]), "--batch-size", str(OPTIONS["batch_size"]),
            "--limit", str(OPTIONS["limit"]), "--no-figures", *extra]


def _env() -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(assets, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(assets, out, *extra), env=_env(), capture_output=True, text=True, timeout=240)


def _cells(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def assert_same_results(got: Path, want: Path) -> None:
    for name in COMPARED:
        rows = _cells(got / name)
        assert rows, name
        assert rows == _cells(want / name), name
    assert not (got / "shards").exists()  # the shard stores go with the cache


def test_two_processes_equal_one(assets, reference, tmp_path):
    out = tmp_path / "out"
    proc = _torchrun(assets, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_results(out, reference)
    import json

    assert json.loads((out / "run.json").read_text())["processes"] == 2
    # only rank 0 printed the table
    assert "[default0]:method" in proc.stdout and "[default1]:" not in proc.stdout


def _rank_pid(parent: int, rank: int, deadline: float) -> int:
    """The pid of the worker torchrun (``parent``) started as ``rank`` (from /proc)."""
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                ppid = int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
                env = proc.joinpath("environ").read_bytes().split(b"\0") if ppid == parent else []
            except (OSError, ValueError, IndexError):
                continue
            if f"RANK={rank}".encode() in env:
                return int(proc.name)
        time.sleep(0.01)
    raise AssertionError(f"torchrun started no rank {rank}")


def _units_written(shard: Path) -> int:
    try:
        return max(0, len((shard / "slices.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the rank's process through /proc")
def test_resume_after_a_killed_rank_equals_an_uninterrupted_run(assets, reference, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(assets, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 180
        pid = _rank_pid(proc.pid, 1, deadline)
        shard = out / "shards" / "rank-1-of-2"
        while _units_written(shard) < 2 and time.monotonic() < deadline:  # one unit: 2 rows
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0  # torchrun tore the run down
    assert _units_written(shard) >= 2
    # the shards are per process: another number of processes is refused in one line
    with pytest.raises(ConfigError, match="started by 2 process"):
        run(data=assets[0], checkpoint=assets[1], out=out, figures=False, progress=False, resume=True, **OPTIONS)
    again = _torchrun(assets, out, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_results(out, reference)


def test_a_refusal_on_rank_0_is_one_line_on_every_rank(assets, tmp_path):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    proc = _torchrun(assets, out)
    assert proc.returncode != 0
    ranks = [ln for ln in proc.stderr.splitlines() if ln.startswith("[default")]
    for r in (0, 1):
        said = [ln for ln in ranks if ln.startswith(f"[default{r}]:")]
        assert said and said[-1].startswith(f"[default{r}]:Error: --out "), proc.stderr[-3000:]
        assert "not written by `xaiseg benchmark`" in said[-1]
    assert not any("Traceback" in ln for ln in ranks), proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written by any rank


def test_a_shard_keeps_each_batch_whole_and_at_its_index():
    from xaiseg.benchmark.select import Selection

    batches = [[0, 1], [2, 3], [4, 5], [6, 7], [8]]
    sel = Selection([i for b in batches for i in b], batches, {i: f"s{i // 3}" for i in range(9)},
                    {f"s{k}": k % 2 for k in range(3)}, 2)
    shards = [sel.shard(r, 2) for r in range(2)]
    assert shards[0].batches == [[0, 1], [], [4, 5], [], [8]]
    assert shards[1].batches == [[], [2, 3], [], [6, 7], []]
    assert shards[1].slice_ids == [2, 3, 6, 7] and shards[1].batch_of == {2: 1, 3: 1, 6: 3, 7: 3}
    assert [shards[r].fold(s) for r in range(2) for s in shards[r].slice_ids] == [sel.fold(s) for s in (0, 1, 4, 5, 8, 2, 3, 6, 7)]


@pytest.mark.parametrize("size", [1, 2])
def test_an_interrupt_says_how_to_resume_with_as_many_processes(assets, tmp_path, monkeypatch, capsys, size):
    """Ctrl-C in the maps pass: under torchrun the way on is torchrun again with as many
    processes (``xaiseg benchmark --resume`` alone would be refused, the shards are per process)."""
    import xaiseg.benchmark.maps_pass as maps_pass
    from xaiseg.distributed import World

    monkeypatch.setattr(maps_pass, "current_world", lambda: World(0, size, 0, size), raising=False)  # rank 0 of `size`

    def interrupt(method, batch):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(data=assets[0], checkpoint=assets[1], out=out, figures=False, progress=False, methods=["centre-prior"],
            threshold="otsu", batch_size=2, limit=4, _after_unit=interrupt)
    said = capsys.readouterr().err.strip().splitlines()[-1]
    if size == 1:
        assert said.endswith(f"continue with `xaiseg benchmark <same options> --resume --out {out}`"), said
    else:
        assert said.endswith(f"continue with the same torchrun command (2 processes in all) and `--resume --out {out}`"), said
