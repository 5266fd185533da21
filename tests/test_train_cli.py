"""``xaiseg train`` through click: a tiny run works, bad arguments give one-line errors."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from xaiseg.cli import main

TINY = json.dumps({"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "num_heads": [1, 1, 2, 2]})


def _run(*args: str):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def test_cli_trains_on_phantom_stream(tmp_path):
    out = tmp_path / "run"
    res = _run("--data", "phantom", "--model", "tiny", "--model-kwargs", TINY, "--epochs", "1", "--steps-per-epoch", "2",
               "--batch-size", "4", "--val-size", "8", "--curriculum", "3,0.5,0.5", "--device", "cpu", "--no-progress",
               "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "model: tiny" in res.output and "val loss" in res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"] == "tiny" and cfg["model_kwargs"]["embed_dim"] == 8 and cfg["training"]["curriculum_start"] == 3.0
    # running again into the same folder without --resume is refused; --resume of a finished run is a no-op
    again = _run("--data", "phantom", "--model", "tiny", "--model-kwargs", TINY, "--epochs", "1", "--steps-per-epoch", "2",
                 "--batch-size", "4", "--val-size", "8", "--curriculum", "3,0.5,0.5", "--device", "cpu", "--no-progress",
                 "--out", str(out))
    assert again.exit_code == 1 and again.output.startswith("Error: ") and "--resume" in again.output


def test_cli_default_model_is_logged(tmp_path):
    res = _run("--data", "phantom", "--model-kwargs", TINY, "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
               "--val-size", "4", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "d"))
    assert res.exit_code == 0, res.output
    assert "model: tiny-224 (the default on cpu and the phantom stream" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model-kwargs", "{bad json"], "--model-kwargs: not valid JSON"),
        (["--model", "resnet50"], "unknown model 'resnet50'"),
        (["--data", "/no/such/folder", "--layout", "physionet"], "does not exist"),
        (["--curriculum", "3,0.5"], "--curriculum takes START,HOLD,SHRINK"),
        (["--curriculum", "3,0.8,0.5"], "sum to <= 1"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--focal-gamma", "2"], "--focal-gamma applies to --task subtypes"),
        (["--windows", "40"], "--windows takes"),
        (["--resume"], "nothing to resume"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--resize", "0"], "--resize must be >= 1"),
        (["--init", __file__], "is not a weights file"),
        (["--model", "vit-tiny", "--model-kwargs", "{}", "--image-size", "60"], "not a multiple of the patch size 8"),
        (["--select", "best"], "Invalid value for '--select'"),
        (["--device", "cuda:0"], None),  # no CUDA here: one line; with CUDA it would start training
    ],
)
def test_cli_bad_arguments_one_line(tmp_path, args, message):
    import torch

    if args[:1] == ["--device"] and torch.cuda.is_available():
        pytest.skip("CUDA present")
    extra = ["--model-kwargs", TINY] if "--model-kwargs" not in args else []
    res = _run(*extra, *args, "--out", str(tmp_path / "x"), "--no-progress")
    assert res.exit_code != 0
    lines = [l for l in res.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    if message:
        assert message in lines[0]
    assert "Traceback" not in res.output
    assert not (tmp_path / "x").exists()  # a run that could not start leaves nothing behind


def test_cli_out_that_is_a_file_is_one_line(tmp_path):
    f = tmp_path / "afile.txt"
    f.write_text("keep")
    for out in (f, f / "sub"):
        res = _run("--model-kwargs", TINY, "--out", str(out), "--no-progress")
        assert res.exit_code in (1, 2) and res.output.count("\n") == 1 and "file" in res.output, res.output
    assert f.read_text() == "keep"


def test_cli_rejects_unknown_task_via_click(tmp_path):
    res = _run("--task", "detection", "--out", str(tmp_path / "y"))
    assert res.exit_code == 2 and "Invalid value for '--task'" in res.output


def _folder_with_one_bad_pair(root):
    import nibabel as nib
    import numpy as np

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        img = rng.normal(30, 10, (32, 32, 3)).astype(np.float32)
        mask = np.zeros((32, 32, 3), np.uint8)
        mask[10:14, 10:14, i % 3] = 1 if i % 2 else 0
        nib.save(nib.Nifti1Image(img, np.eye(4)), root / "images" / f"s{i}.nii.gz")
        nib.save(nib.Nifti1Image(mask, np.eye(4)), root / "masks" / f"s{i}.nii.gz")
    # one subject whose mask does not fit its image
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.float32), np.eye(4)), root / "images" / "bad.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((16, 32, 3), np.uint8), np.eye(4)), root / "masks" / "bad.nii.gz")


def test_cli_skip_bad(tmp_path, recwarn):
    data = tmp_path / "data"
    _folder_with_one_bad_pair(data)
    args = ["--data", str(data), "--layout", "folder", "--model", "tiny", "--model-kwargs", TINY, "--epochs", "1",
            "--batch-size", "4", "--val-fraction", "0.25", "--device", "cpu", "--no-progress"]
    res = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "bad" in res.output
    assert sum(line.startswith("Error: ") for line in res.output.splitlines()) == 1
    assert "Traceback" not in res.output and not (tmp_path / "a" / "model.safetensors").exists()
    res = _run(*args, "--skip-bad", "--out", str(tmp_path / "b"))
    assert res.exit_code == 0, res.output
    assert "--skip-bad: skipped 1 bad item(s)" in res.output and "bad.nii" in res.output
    assert (tmp_path / "b" / "model.safetensors").exists()
    assert not [w for w in recwarn if "bad item" in str(w.message)]  # reported once, in the log
