"""A process whose peer dies mid-run says so in one line (a user error), not with a traceback of
gloo's "Connection closed by peer": under torchrun a rank that fails (a NaN slice on rank 1)
prints its own one-line error, and rank 0, waiting for it in a collective, must not add a
traceback before torchrun stops it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

# Started without torchrun (whose agent would SIGTERM rank 0 first, hiding what it says): rank 1
# leaves the process group with an error, as benchmark's rank 1 does on a broken slice; rank 0
# is then in each collective helper in turn.
SCRIPT = r"""
import sys, torch
from xaiseg.distributed import current_world, process_group, gather_to_main, broadcast_from_main, sum_over_ranks
from xaiseg.errors import XaisegError
which = sys.argv[1]
w = current_world()
try:
    with process_group(w, torch.device("cpu"), timeout_s=60):
        if w.rank == 1:
            raise SystemExit(3)
        {"gather": lambda: gather_to_main("x", w), "broadcast": lambda: broadcast_from_main("x", w),
         "sum": lambda: sum_over_ranks([1.0], w)}[which]()
except XaisegError as exc:
    print("USER-ERROR", str(exc).count("\n"), exc, flush=True)
    sys.exit(5)
print("NO-ERROR", flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("which", ["gather", "broadcast"])
def test_a_dead_peer_is_one_line_on_the_survivor(which):
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = os.environ | {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", SCRIPT, which], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert procs[1].returncode == 3
    out, err = outs[0]
    assert procs[0].returncode == 5, (out, err[-2000:])  # not a RuntimeError's traceback
    assert out.startswith("USER-ERROR 0 process 0 of 2 stopped: another process of the run failed"), out
    assert "Traceback" not in err, err[-2000:]
