"""`torchrun -m xaiseg train` on two gloo processes (CPU), started as a user would.

One interrupted two-process run (rank 0 dies after epoch 1, as a crash would leave it) and its
``--resume`` through the command line give the checkpoint the tests read: it must load, its
recorded validation metrics must be what the loaded model scores on the validation slices
(recomputed here with sklearn), and its weights must be a single-process run's with the same
global batch (DDP averaged the gradients of the two shards), also across the resume.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import xaiseg
from xaiseg.distributed import World
from xaiseg.training import TrainConfig, train
from xaiseg.training.ddp import ShardSampler, shard
from xaiseg.training.run_files import LOG_FILE, RESUME_FILE
from xaiseg.training.sources import EpochSampler

TINY = {"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]}
# 15 training slices (3 subjects x 5) in global batches of 7: 7, 7, 1. Shards of 4 + 3, and a
# last batch that leaves rank 1 with nothing (its stand-in slice must weigh 0). Seed 1 holds out
# subject 001, which has slices with and without hemorrhage (an AUC exists).
OPTIONS = dict(layout="physionet", model="tiny", epochs=2, batch_size=7, lr=1e-3, val_fraction=0.25, seed=1,
               device="cpu", patience=0, workers=0, select="last", train_on="disk",
               precision="fp32")  # the processes, unlike this one, see the CPU's own bf16 (conftest)


def _argv(data, out, **extra) -> list[str]:
    opts = {**OPTIONS, **extra}
    argv = ["train", "--data", str(data), "--out", str(out), "--model-kwargs", json.dumps(TINY), "--no-progress"]
    for k, v in opts.items():
        if v is True:
            argv.append(f"--{k.replace('_', '-')}")
        else:
            argv += [f"--{k.replace('_', '-')}", str(v)]
    return argv


def _torchrun(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    from xaiseg.data.phantom_writer import write_phantom

    root = tmp_path_factory.mktemp("ddp")
    data = write_phantom(root / "ph", subjects=4, slices_per_subject=5, size=32, prevalence=0.5, seed=0, progress=False)
    out = root / "run"
    crash = root / "crash.py"  # the command line, with rank 0 dying once epoch 1 is on disk
    crash.write_text(textwrap.dedent("""
        import functools, os, sys
        import xaiseg.training
        from xaiseg.cli import main

        def die(rec):
            if rec["epoch"] == 1:
                os._exit(3)  # no clean-up at all, like a killed process

        xaiseg.training.train = functools.partial(xaiseg.training.train, on_epoch_end=die)
        main(sys.argv[1:])
    """))
    first = _torchrun([str(crash), *_argv(data, out)], root)
    assert first.returncode != 0 and len((out / LOG_FILE).read_text().splitlines()) == 1, first.stderr[-3000:]
    second = _torchrun(["-m", "xaiseg", *_argv(data, out, resume=True)], root)
    assert second.returncode == 0, second.stderr[-3000:]
    return data, out, second


def test_the_two_process_checkpoint_loads_and_scores_what_it_recorded(ddp_run):
    import torch.nn.functional as F
    from sklearn.metrics import roc_auc_score

    from xaiseg.data import open_dataset

    data, out, _ = ddp_run
    loaded = xaiseg.load_model(out, device="cpu")
    cfg = loaded.config
    assert cfg["training"]["world_size"] == 2 and cfg["training"]["global_batch_size"] == 7
    val = set(cfg["data"]["val_subjects"])
    ds = open_dataset(str(data), layout="physionet")
    xs, ys = [], []
    for i, rec in enumerate(ds.records):
        if str(rec.subject) in val:
            xs.append(loaded.prepare(np.asarray(ds[i]["image"], dtype=np.float32))[0])
            ys.append(float(np.asarray(rec.labels)[-1]) > 0.5)
    with torch.no_grad():
        logits = loaded.model(torch.cat(xs)).float()
    y = np.array(ys)
    assert 0 < y.sum() < len(y)
    p = logits.softmax(-1)[:, 1].numpy()
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and cfg["metrics"]["best_epoch"] == 2  # --select last
    for recorded in (cfg["metrics"], log[-1]):
        assert recorded["val_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
        assert recorded["val_loss"] == pytest.approx(float(F.cross_entropy(logits, torch.as_tensor(y).long())), abs=1e-5)
        assert recorded["val_accuracy"] == pytest.approx(float(((p >= 0.5) == y).mean()), abs=1e-9)
    assert "processes: 2 (gloo), global batch 7 = 4 + 3 per process" in (out / "train.log").read_text()
    state = torch.load(out / RESUME_FILE, weights_only=True)
    assert len(state["rank_rng"]) == 2


def test_two_processes_train_the_weights_of_one_with_the_same_global_batch(ddp_run, tmp_path):
    from safetensors.torch import load_file

    data, out, _ = ddp_run
    one = train(TrainConfig(out=str(tmp_path / "one"), data=str(data), model_kwargs=dict(TINY), progress=False, **OPTIONS))
    a, b = load_file(str(out / "model.safetensors")), load_file(str(one.out / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst  # float sums in another order; a wrong average is off by ~1e-3
    ddp_log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    for r2, r1 in zip(ddp_log, one.history):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-5)
        assert r2["step"] == r1["step"] == 3 * r2["epoch"]


def test_shards_deal_every_draw_of_a_global_batch_once():
    batches = list(EpochSampler(np.arange(15), epoch=0, batch_size=7))
    samplers = [ShardSampler(EpochSampler(np.arange(15), epoch=0, batch_size=7), World(r, 2)) for r in range(2)]
    per_rank = [list(s) for s in samplers]
    assert [len(s) for s in samplers] == [3, 3]
    for i, batch in enumerate(batches):
        dealt = [k for r in range(2) for k in per_rank[r][i][: samplers[r].counts()[i]]]
        assert sorted(dealt) == sorted(batch)
    assert samplers[1].counts() == [3, 3, 0] and per_rank[1][2] == batches[2][:1]  # a stand-in, weighted 0
    assert shard(list(range(5)), World(2, 3)) == ([2], 1)


def test_each_rank_renders_its_own_seeded_part_of_the_phantom_stream():
    from xaiseg.data.preprocess import Preprocessor
    from xaiseg.training.curriculum import Curriculum
    from xaiseg.training.sources import PhantomStream

    def stream(world):
        return PhantomStream(seed=0, start=0, stop=1, total_steps=1, batch_size=5, preprocessor=Preprocessor(32),
                             render_size=32, prevalence=0.5, curriculum=Curriculum(), world=world)

    alone = stream(World()).batch(0)[0]
    r0, r1 = (stream(World(r, 2)).batch(0)[0] for r in range(2))
    assert (len(alone), len(r0), len(r1)) == (5, 3, 2)
    torch.testing.assert_close(stream(World(1, 2)).batch(0)[0], r1)  # seeded
    slices = [alone[i] for i in range(5)] + [r0[i] for i in range(3)] + [r1[i] for i in range(2)]
    assert all(not torch.equal(slices[i], slices[j]) for i in range(10) for j in range(i))
