"""--resume after a crash that garbled the journal: undecodable bytes in slices.csv and a
truncated map cache are recomputed, and the result equals an uninterrupted run."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from xaiseg.benchmark import run

from .benchmark_helpers import make_checkpoint, make_phantom


class _Crash(RuntimeError):
    pass


def _rows(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "map_seconds"} for r in csv.DictReader(fh)]


def test_resume_over_a_garbled_journal_equals_an_uninterrupted_run(tmp_path):
    data, ckpt = make_phantom(tmp_path / "phantom"), make_checkpoint(tmp_path / "ckpt")
    args = dict(data=data, checkpoint=ckpt, methods=["swin-sam", "centre-prior"], threshold="grid", folds=2,
                batch_size=4, limit=16, figures=False, progress=False)
    run(out=tmp_path / "ref", **args)
    done = []

    def crash_after_four(method, batch):
        done.append((method, batch))
        if len(done) == 4:
            raise _Crash("simulated crash")

    with pytest.raises(_Crash):
        run(out=tmp_path / "crash", _after_unit=crash_after_four, **args)
    with open(tmp_path / "crash" / "slices.csv", "ab") as fh:  # a bad sector's worth of junk
        fh.write(b"\xff\xfe\x00\x00swin-sam,3,\x81\x82\n\x00\x00\x00")
    cached = sorted(p for p in (tmp_path / "crash" / "cache").rglob("*.npz") if p.parent.name != "brain@")
    assert len(cached) == 4
    cached[0].write_bytes(cached[0].read_bytes()[:40])  # a unit whose file was cut short
    brains = sorted((tmp_path / "crash" / "cache" / "brain@").glob("*.npz"))
    assert len(brains) == 2  # the two batches the maps pass reached
    brains[0].write_bytes(brains[0].read_bytes()[:40])  # cut short too: the scores pass computes them again
    run(out=tmp_path / "crash", resume=True, **args)
    assert _rows(tmp_path / "crash" / "slices.csv") == _rows(tmp_path / "ref" / "slices.csv")
    assert _rows(tmp_path / "crash" / "summary.csv") != []
    ref = {k: v for k, v in _rows(tmp_path / "ref" / "summary.csv")[0].items() if k != "wall_time_s"}
    got = {k: v for k, v in _rows(tmp_path / "crash" / "summary.csv")[0].items() if k != "wall_time_s"}
    assert got == ref


def test_two_first_runs_generating_the_default_phantom_both_get_it(tmp_path, monkeypatch):
    from xaiseg.benchmark import defaults

    monkeypatch.setenv("XAISEG_CACHE", str(tmp_path / "cache"))
    params = {"subjects": 2, "slices_per_subject": 2, "size": 32, "prevalence": 0.5, "seed": 1}
    real = defaults.phantom_dir(params)
    rename = defaults.os.replace

    def the_other_run_finishes_first(src, dst):  # it renames its copy into place just before us
        if Path(dst) == real and not real.exists():
            real.mkdir()
            (real / "ct_scans").mkdir()
            (real / ".complete").write_text("{}\n")
        return rename(src, dst)

    monkeypatch.setattr(defaults.os, "replace", the_other_run_finishes_first)
    got = defaults.default_phantom(params, progress=False)
    assert got == real and (got / ".complete").exists()
    assert [p.name for p in real.parent.iterdir()] == [real.name]  # no temporary folder left


def test_a_second_first_run_waits_for_the_one_generating(tmp_path):
    """Two processes asking for the default phantom at once (torchrun's ranks): the second waits
    for the first's generation and uses it; exactly one generation runs, nothing is deleted."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys, time
        from xaiseg.benchmark import defaults
        from xaiseg.data import phantom_writer
        real_write = phantom_writer.write_phantom
        def slow_write(*a, **k):  # long enough for the other process to arrive meanwhile
            print("generating", flush=True)
            time.sleep(1.5)
            return real_write(*a, **k)
        phantom_writer.write_phantom = slow_write
        params = {"subjects": 2, "slices_per_subject": 2, "size": 32, "prevalence": 0.5, "seed": 1}
        print(defaults.default_phantom(params, progress=False), flush=True)
    """)
    env = {**__import__("os").environ, "XAISEG_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _o, e in outs]
    lines = [o.split() for o, _e in outs]
    assert sum(line.count("generating") for line in lines) == 1  # the other one waited, then found it complete
    got = {line[-1] for line in lines}
    assert len(got) == 1
    target = Path(got.pop())
    assert (target / ".complete").exists() and [p.name for p in target.parent.iterdir()] == [target.name]
