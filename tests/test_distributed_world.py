"""xaiseg.distributed: the torchrun environment read back, and its collectives across two real
gloo processes (started by torchrun, as a user would)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from xaiseg.distributed import World, current_world, rank_device
from xaiseg.errors import ConfigError


def test_world_of_one_without_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert current_world() == World(0, 1, 0, 1)
    assert not current_world().distributed and current_world().is_main


def test_world_from_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    w = current_world()
    assert (w.rank, w.size, w.local_rank, w.local_size, w.is_main) == (3, 4, 1, 2, False)
    assert str(rank_device("cpu", w)) == "cpu"


@pytest.mark.parametrize("env", [{"RANK": "2", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "two"}])
def test_bad_environment_is_one_line(monkeypatch, env):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match="torchrun"):
        current_world()


def test_gather_and_broadcast_over_two_gloo_processes(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        from xaiseg.distributed import current_world, rank_device, process_group, gather_to_main, broadcast_from_main
        w = current_world()
        with process_group(w, rank_device("cpu", w)):
            got = gather_to_main({"rank": w.rank, "items": list(range(w.rank + 2))}, w)
            said = broadcast_from_main(f"rank {w.rank} speaking", w)
        with open(sys.argv[1] + f".{w.rank}", "w") as fh:
            json.dump({"got": got, "said": said}, fh)
    """))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--standalone", str(script), str(out)], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0 = json.loads((tmp_path / "out.0").read_text())
    r1 = json.loads((tmp_path / "out.1").read_text())
    assert r0["got"] == [{"rank": 0, "items": [0, 1]}, {"rank": 1, "items": [0, 1, 2]}]
    assert r1["got"] is None
    assert r0["said"] == r1["said"] == "rank 0 speaking"
