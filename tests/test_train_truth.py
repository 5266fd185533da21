"""Training that tells the truth: the near-chance verdict, its warning lines (train, explain), a
diverging run stops with one line, and the default recipe learns on a freshly written phantom."""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from xaiseg.cli import main
from xaiseg.errors import ConfigError
from xaiseg.training import TrainConfig, checkpoint_verdict, maps_warning, train

from .benchmark_helpers import make_checkpoint, make_phantom

TINY = json.dumps({"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "num_heads": [1, 1, 2, 2]})


def _metrics(**m):
    return {"metrics": m}


@pytest.mark.parametrize(
    "metrics,expect",
    [
        (dict(val_auc=0.95, val_sensitivity=0.8, val_specificity=0.97), None),
        (dict(val_auc=0.66, val_sensitivity=0.3, val_specificity=0.9), "validation AUC 0.660 < 0.7"),
        (dict(val_auc=0.8, val_sensitivity=0.0, val_specificity=1.0), "sensitivity 0 (it calls no slice positive)"),
        (dict(val_auc=0.75, val_sensitivity=1.0, val_specificity=0.0), "sensitivity 1 (it calls every slice positive)"),
        (dict(val_auc=0.699, val_sensitivity=0.0), "validation AUC 0.699 < 0.7, sensitivity 0"),
        (dict(val_auc=0.7, val_sensitivity=0.5, val_specificity=0.6), None),  # 0.7 itself is not "below"
        (dict(val_auc=float("nan")), None),  # no validation figure: no verdict either way
        ({}, None),
    ],
)
def test_checkpoint_verdict(metrics, expect):
    got = checkpoint_verdict(_metrics(**metrics))
    if expect is None:
        assert got is None
    else:
        assert got is not None and got.startswith("near chance: ") and expect in got
        line = maps_warning(_metrics(**metrics))
        assert "\n" not in line and "contrast" in line and expect in line
    assert checkpoint_verdict({}) is None and maps_warning({"metrics": None}) is None


def _cli_train(tmp_path, *extra):
    args = ["train", "--data", "phantom", "--model", "tiny", "--model-kwargs", TINY, "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "4", "--val-size", "16", "--threads", "1",
            "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run"), *extra]
    return CliRunner().invoke(main, args)


def test_train_says_near_chance_in_its_last_line_and_config(tmp_path, monkeypatch):
    import xaiseg.training.trainer as trainer

    # a validation that says "every slice negative" (what a run stuck at chance gives)
    chance = {"loss": 0.6, "n": 16, "positives": 8, "auc": 0.55, "accuracy": 0.5, "sensitivity": 0.0, "specificity": 1.0}
    monkeypatch.setattr(trainer, "_evaluate", lambda *a, **k: dict(chance))
    r = _cli_train(tmp_path)
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["verdict"] == "near chance: validation AUC 0.550 < 0.7, sensitivity 0 (it calls no slice positive)"
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("WARNING: the classifier is " + cfg["verdict"])
    assert (tmp_path / "run" / "train.log").read_text().splitlines()[-1].endswith(last)
    # a run that learned says nothing of the kind
    good = {**chance, "auc": 0.93, "sensitivity": 0.8, "specificity": 0.95}
    monkeypatch.setattr(trainer, "_evaluate", lambda *a, **k: dict(good))
    r = _cli_train(tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "b" / "run" / "config.json").read_text())["verdict"] is None
    assert "WARNING" not in r.output and r.output.strip().splitlines()[-1].startswith("done in ")


def test_explain_warns_once_for_a_near_chance_checkpoint(tmp_path):
    data, ckpt = make_phantom(tmp_path / "ph"), make_checkpoint(tmp_path / "ckpt")
    scan = data / "ct_scans" / "001.nii"

    def explain(out):
        args = ["explain", "--checkpoint", str(ckpt), "--input", str(scan), "--method", "swin-sam",
                "--out", str(tmp_path / out), "--device", "cpu"]
        return CliRunner().invoke(main, args)

    r = explain("fine.nii.gz")  # no validation metrics: nothing to say
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output
    cfg_path = ckpt / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["metrics"] = {"val_auc": 0.55, "val_sensitivity": 0.0, "val_specificity": 1.0}
    cfg_path.write_text(json.dumps(cfg))
    r = explain("chance.nii.gz")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.output.splitlines() if line.startswith("warning:")]
    assert warnings == [maps_warning(cfg)]
    assert "validation AUC 0.550 < 0.7" in warnings[0] and (tmp_path / "chance.nii.gz").is_file()


def test_a_diverging_run_stops_with_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import torch

    import xaiseg.training.trainer as trainer

    real_loss, calls = trainer.task_loss, []

    def loss_that_blows_up(*a, **k):  # finite for two steps, then what a too-high lr gives
        calls.append(1)
        loss = real_loss(*a, **k)
        return loss if len(calls) <= 2 else loss * torch.tensor(float("nan"))

    monkeypatch.setattr(trainer, "task_loss", loss_that_blows_up)
    cfg = TrainConfig(out=str(tmp_path / "div"), data="phantom", model="tiny", model_kwargs=json.loads(TINY),
                      epochs=1, steps_per_epoch=6, batch_size=4, val_size=8, device="cpu", progress=False, threads=1)
    with pytest.raises(ConfigError) as e:
        train(cfg)
    msg = str(e.value)
    assert msg.startswith("training diverged: the loss is nan at step 3 (learning rate ") and msg.endswith("try a lower --lr")
    assert "\n" not in msg and len(calls) == 3
    assert not (tmp_path / "div").exists()  # nothing half-written


def _write(tmp_path, *args):
    data = tmp_path / "ph"
    r = CliRunner().invoke(main, ["phantom", str(data), *args, "--quiet"])
    assert r.exit_code == 0, r.output
    return data


def test_defaults_train_a_written_phantom_with_the_recipe(tmp_path):
    """`xaiseg phantom` then `xaiseg train` with default options: fresh slices of the folder's
    generator (randomised), the default lesion-size curriculum, warm-up + cosine at the default
    learning rate, validation on every written slice. Only the budget is cut (CI: 2 cores)."""
    data = _write(tmp_path, "--subjects", "3", "--slices", "6", "--size", "64")
    r = CliRunner().invoke(main, ["train", "--data", str(data), "--model", "tiny", "--model-kwargs", TINY,
                                  "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "4", "--threads", "1",
                                  "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data"]["source"] == "phantom-stream" and cfg["data"]["acquisition"] == "random"
    assert cfg["data"]["validation"] == str(data) and cfg["data"]["val_size"] == 18  # every written slice
    assert cfg["training"]["lr"] == 5e-4 and cfg["training"]["train_on"] == "auto"
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["lesion_scale_start"] == 3.0 and log[-1]["lesion_scale_end"] == 1.0  # 3,0.15,0.35
    assert log[0]["lr"] == pytest.approx(5e-4 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 1 / 5))))  # step 2 of 6, warm-up 1
    # --train-on disk: the folder's own slices, split by subject (no curriculum there)
    r = CliRunner().invoke(main, ["train", "--data", str(data), "--train-on", "disk", "--model", "tiny",
                                  "--model-kwargs", TINY, "--epochs", "1", "--batch-size", "4", "--threads", "1",
                                  "--val-fraction", "0.34", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "disk")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "disk" / "config.json").read_text())["data"]["source"] == str(data)


@pytest.mark.slow
def test_defaults_learn_on_a_freshly_written_phantom(tmp_path):
    """The claim itself, with nothing cut: `xaiseg phantom DIR` and `xaiseg train --data DIR`, both
    with default options (on a CPU: tiny-224, 30 x 100 steps of 32 fresh slices, lr 5e-4). About
    40 min on an idle 2-core machine in bf16, longer on a busy one: `pytest -m slow`.
    Bound: 0.88, the level the defaults reached for training seeds 0/1/2 (0.908 / 0.887 / 0.905;
    this run is seed 0, 0.908 here); issue 16 asks 0.9 for the defaults, which seed 1 misses
    (docs/training.md, "Where the defaults lose the last 0.01")."""
    data = _write(tmp_path)
    r = CliRunner().invoke(main, ["train", "--data", str(data), "--threads", "1", "--no-progress",
                                  "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["preset"] == "tiny-224" and cfg["training"]["epochs"] == 30
    assert cfg["verdict"] is None and cfg["metrics"]["val_auc"] >= 0.88, cfg["metrics"]


# What the suite's learning test cuts (CI: 2 cores, no GPU): 64 px slices and a narrower `tiny`
# (embed_dim 16, a 16x16 first grid), 6 x 100 steps; the batch (32), the learning rate and its
# schedule, the curriculum and the stream of the folder's acquisition stay the defaults.
# Why these cuts and not others (docs/training.md, "The suite's learning test"): the stream's
# rendering (~3-8 ms a slice at any size) bounds the cost, so fewer steps, not smaller images,
# save time; but the curriculum is a fraction of the run, and under ~600 steps its big-lesion
# phase is too short to take off. Batches of 16 are cheaper but did not take off for seed 2.
LEARN_KWARGS = json.dumps({"img_size": 64, "embed_dim": 16})
LEARN_AUC = 0.7  # seeds 0-5 (phantom and training) reached 0.712-0.850 (at 7e-4: 0.725-0.873)
LEARN_MARGIN = 0.15  # over the untrained model (0.36-0.65 there: contrast alone ranks some slices); seen: 0.20-0.41


def _trained_config(tmp_path, data, name, *budget):
    r = CliRunner().invoke(main, ["train", "--data", str(data), "--model", "tiny", "--model-kwargs", LEARN_KWARGS,
                                  "--threads", "1", "--device", "cpu", "--no-progress", "--out", str(tmp_path / name),
                                  *budget])
    assert r.exit_code == 0, r.output
    return json.loads((tmp_path / name / "config.json").read_text())


def test_defaults_learn_on_a_small_freshly_written_phantom(tmp_path):
    """`xaiseg train` with default options, its budget cut to fit CI, on a freshly written phantom
    (clean acquisition, so the stream is clean too) reaches validation AUC >= 0.7 on all 240
    written slices, and beats the untrained model by >= 0.15 on the same slices. The control is the
    same run stopped after one step at a learning rate of 1e-12: the very weights it starts from
    (same seed). Why a control: attention follows contrast, so an untrained Swin ranks some
    positives above negatives; "learned" must mean better than that. ~50 s on 2 lightly loaded
    cores, ~100 s on busy ones."""
    data = _write(tmp_path, "--subjects", "10", "--slices", "24", "--size", "64", "--prevalence", "1",
                  "--acquisition", "clean")
    untrained = _trained_config(tmp_path, data, "untrained", "--epochs", "1", "--steps-per-epoch", "1", "--lr", "1e-12")
    learned = _trained_config(tmp_path, data, "learned", "--epochs", "6", "--steps-per-epoch", "100")
    assert learned["data"]["source"] == "phantom-stream" and learned["data"]["acquisition"] == "clean"
    assert learned["training"]["batch_size"] == 32 and learned["training"]["lr"] == 5e-4
    assert learned["data"]["val_size"] == 240 and learned["verdict"] is None
    before, after = untrained["metrics"]["val_auc"], learned["metrics"]["val_auc"]
    assert after >= LEARN_AUC and after >= before + LEARN_MARGIN, (before, after)
