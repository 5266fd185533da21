"""`torchrun -m xaiseg train` as a user gets it wrong: bad combinations stop every process
before ``--out`` is taken, and a process left alone by a failed or killed one says so in one
line instead of a traceback of the collective that lost its peer."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from xaiseg.cli import main

TINY = json.dumps({"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2],
                   "num_heads": [1, 1, 2, 2]})
# what gloo 2.x raised on rank 0 when rank 1 was killed with SIGKILL mid-epoch (copied from a run)
GLOO_RESET = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
              "[127.0.0.1]:27033: Connection reset by peer. This is typically caused by a remote worker hanging "
              "or bugs in the application. Check the logs of the remote worker before reporting an error.")


def _torchrun_env(monkeypatch, rank: int, size: int) -> None:
    for k, v in {"RANK": rank, "WORLD_SIZE": size, "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": size}.items():
        monkeypatch.setenv(k, str(v))


@pytest.mark.parametrize("rank", [0, 1])
def test_a_global_batch_smaller_than_the_processes_stops_before_out_is_taken(tmp_path, monkeypatch, rank):
    import xaiseg.output.folder as folder

    _torchrun_env(monkeypatch, rank, 3)
    taken = []
    real = folder.output_folder
    monkeypatch.setattr(folder, "output_folder", lambda *a, **k: taken.append(a) or real(*a, **k))
    res = CliRunner().invoke(main, ["train", "--model-kwargs", TINY, "--batch-size", "2", "--device", "cpu",
                                    "--out", str(tmp_path / "x"), "--no-progress"], catch_exceptions=False)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code != 0 and len(lines) == 1, res.output
    assert "--batch-size 2 is the global batch, shared by 3 processes" in lines[0]
    # rank 0 must not have taken --out: torchrun would stop it half-way when another rank fails first
    assert taken == [] and not (tmp_path / "x").exists()


def test_a_collective_that_lost_its_peer_is_one_line_other_errors_are_not_touched():
    from xaiseg.distributed import LostPeerError, World, lost_peer

    two = World(0, 2)
    lost = lost_peer(RuntimeError(GLOO_RESET), two, resumable=True)
    assert isinstance(lost, LostPeerError)
    msg = str(lost)
    assert "\n" not in msg and "another process of the run failed or was killed" in msg
    assert "Read error [127.0.0.1]:27033: Connection reset by peer)" in msg and "pair.cc" not in msg
    assert msg.endswith("--resume")
    assert "with --resume to continue from what was saved" in str(lost_peer(RuntimeError(GLOO_RESET), World(1, 2), None))
    assert lost_peer(RuntimeError(GLOO_RESET), World(), True) is None  # one process: no peer to lose
    assert lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), two, True) is None  # a bug here
    assert lost_peer(ValueError(GLOO_RESET), two, True) is None


def test_rank_1_waiting_for_a_rank_0_that_refused_the_resume_says_one_line(tmp_path):
    from xaiseg.data.phantom_writer import write_phantom

    data = write_phantom(tmp_path / "ph", subjects=4, slices_per_subject=3, size=32, prevalence=0.5, seed=0,
                         progress=False)
    argv = ["train", "--data", str(data), "--layout", "physionet", "--train-on", "disk", "--model", "tiny",
            "--model-kwargs", TINY, "--epochs", "1", "--batch-size", "4", "--val-fraction", "0.25", "--seed", "1",
            "--device", "cpu", "--workers", "0", "--threads", "1", "--no-progress", "--out", str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([sys.executable, "-m", "xaiseg", *argv], env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    # rank 0 refuses (other --lr) while rank 1 already waits for resume.pt in a broadcast
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "xaiseg", *argv, "--resume", "--lr", "3e-4"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode != 0
    assert "Error: --resume with different options than the interrupted run: lr 0.0005 in the run, 0.0003 now" in proc.stderr
    assert "[rank1]: Traceback" not in proc.stderr and "[rank0]: Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_each_local_process_takes_its_own_gpu_and_one_gpu_for_all_is_refused(monkeypatch):
    import torch

    from xaiseg.distributed import World, rank_device
    from xaiseg.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    two_here = [World(r, 4, r % 2, 2) for r in range(4)]  # two machines, two processes each
    assert [str(rank_device("auto", w)) for w in two_here] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert [str(rank_device("cuda", w)) for w in two_here] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    with pytest.raises(ConfigError, match="would put all 2 processes of this machine on one GPU"):
        rank_device("cuda:1", two_here[0])
    assert str(rank_device("cuda:1", World(1, 2, 0, 1))) == "cuda:1"  # one process per machine: as given
    with pytest.raises(ConfigError, match="has 2 GPU"):
        rank_device("auto", World(2, 3, 2, 3))
