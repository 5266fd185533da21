"""``xaiseg train --task segmentation`` through click: a tiny run, and one-line errors."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from xaiseg.cli import main

TINY = json.dumps({"channels": [4, 8], "strides": [2], "num_res_units": 0})


def _run(*args: str):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from xaiseg.data.phantom_writer import write_phantom

    return write_phantom(tmp_path_factory.mktemp("ph") / "ph", subjects=3, slices_per_subject=4, size=32,
                         prevalence=1.0, seed=1, progress=False)


def test_cli_trains_a_segmenter(phantom, tmp_path):
    out = tmp_path / "seg"
    args = ["--task", "segmentation", "--data", str(phantom), "--model-kwargs", TINY, "--image-size", "32", "--epochs", "1",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--out", str(out)]
    res = _run(*args)
    assert res.exit_code == 0, res.output
    assert "segmenter: unet (default on cpu" in res.output and "done: best epoch 1" in res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "segmenter" and cfg["architecture"] == "unet" and cfg["training"]["task"] == "segmentation"
    assert cfg["model_kwargs"]["channels"] == [4, 8] and cfg["fold"] is None
    again = _run(*args)
    assert again.exit_code == 1 and again.output.startswith("Error: ") and "--resume" in again.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "segmentation"], "write one with `xaiseg phantom DIR`"),
        (["--task", "segmentation", "--model", "tiny", "--data", "{ph}"], "unknown segmenter 'tiny'"),
        (["--task", "segmentation", "--ema", "0.9", "--data", "{ph}"], "--ema applies to the classifier tasks"),
        (["--task", "segmentation", "--curriculum", "3,0.2,0.2", "--data", "{ph}"], "--curriculum applies to the classifier"),
        (["--task", "segmentation", "--folds", "1", "--data", "{ph}"], "--folds must be 0 (one model) or >= 2"),
        (["--task", "segmentation", "--folds", "4", "--data", "{ph}"], "--folds 4 needs at least 4 subjects with hemorrhage"),
        (["--task", "segmentation", "--image-size", "36", "--data", "{ph}"], "not a multiple of 8"),
        (["--task", "segmentation", "--resume", "--data", "{ph}"], "holds no segmenter run to resume"),
        (["--task", "binary", "--folds", "3"], "--folds applies to --task segmentation"),
    ],
)
def test_cli_segmentation_errors_are_one_line(phantom, tmp_path, args, message):
    out = tmp_path / "o"
    res = _run(*[a.replace("{ph}", str(phantom)) for a in args], "--device", "cpu", "--no-progress", "--out", str(out))
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not out.exists()  # nothing half written


def test_segmentation_defaults_differ_from_the_classifiers_and_given_values_win(phantom, tmp_path, monkeypatch):
    import xaiseg.segmenters as seg
    import xaiseg.training as tr

    got = {}
    monkeypatch.setattr(seg, "train_segmenter", lambda cfg: got.setdefault("seg", cfg))
    monkeypatch.setattr(tr, "train", lambda cfg: got.setdefault("cls", cfg))
    assert _run("--task", "segmentation", "--data", str(phantom), "--device", "cpu", "--out", str(tmp_path / "a")).exit_code == 0
    s = got["seg"]
    assert (s.epochs, s.batch_size, s.lr, s.patience) == (40, 16, 1e-3, 0)
    got.clear()
    assert _run("--task", "segmentation", "--data", str(phantom), "--epochs", "3", "--lr", "5e-4", "--device", "cpu",
                "--out", str(tmp_path / "b")).exit_code == 0
    s = got["seg"]
    assert (s.epochs, s.batch_size, s.lr, s.patience) == (3, 16, 5e-4, 0)
    assert _run("--data", str(phantom), "--device", "cpu", "--out", str(tmp_path / "c")).exit_code == 0
    c = got["cls"]
    assert (c.epochs, c.batch_size, c.lr, c.patience) == (30, 32, 5e-4, 5)  # a written phantom: the stream's recipe
