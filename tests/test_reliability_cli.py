"""The commands that write outputs, against the second battery of hostile inputs: `xaiseg
explain`, `xaiseg train`, `xaiseg phantom` never change what the user owns, refuse before any
work in one line, and say a full disk in one line."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xaiseg.cli import main

from ._guards import no_hang  # noqa: F401 (fixture)
from .benchmark_helpers import INPUT, make_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory, "reliab-assets")


def _invoke(args):
    return CliRunner().invoke(main, args)


def _one_line_error(r, *fragments: str) -> str:
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1 and "Traceback" not in r.output, r.output
    for f in fragments:
        assert f in r.output, r.output
    return r.output


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- explain ---------------------------------------------------------------------------------
def _scan_copy(data: Path, tmp_path: Path) -> Path:
    scan = tmp_path / "scan.nii"
    shutil.copy(data / "ct_scans" / "001.nii", scan)
    return scan


def test_explain_never_writes_over_an_input(assets, tmp_path):
    data, ckpt = assets
    scan = _scan_copy(data, tmp_path)
    brain = tmp_path / "brain.nii"
    shutil.copy(data / "brain_masks" / "001.nii", brain)
    (tmp_path / "link.nii").symlink_to(scan)
    os.link(scan, tmp_path / "hard.nii")
    before = scan.read_bytes(), brain.read_bytes(), _tree(ckpt)
    cases = [(scan, []), (tmp_path / "link.nii", []), (tmp_path / "hard.nii", []), (brain, ["--brain-mask", str(brain)]),
             (ckpt / "config.json", []), (ckpt / "model.safetensors", [])]
    for out, extra in cases:
        for overwrite in ([], ["--overwrite"]):
            r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(scan), "--out", str(out), "--device", "cpu",
                         *extra, *overwrite])
            _one_line_error(r, "is the input")
    assert (scan.read_bytes(), brain.read_bytes(), _tree(ckpt)) == before


def test_explain_replaces_an_existing_file_only_with_overwrite(assets, tmp_path):
    import nibabel as nib

    data, ckpt = assets
    scan = _scan_copy(data, tmp_path)
    gt = tmp_path / "gt.nii"
    shutil.copy(data / "masks" / "001.nii", gt)
    before = gt.read_bytes()
    base = ["explain", "--checkpoint", str(ckpt), "--input", str(scan), "--method", "centre-prior", "--device", "cpu",
            "--out", str(gt)]
    _one_line_error(_invoke(base), "already exists; pass --overwrite")
    assert gt.read_bytes() == before
    r = _invoke(base + ["--overwrite"])
    assert r.exit_code == 0, r.output
    m = nib.load(gt)
    assert m.get_data_dtype() == np.float32 and m.shape == nib.load(scan).shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.nii", "scan.nii"]  # no temporary left


def test_explain_full_disk_is_one_line_and_leaves_no_partial_file(assets, tmp_path, monkeypatch):
    import nibabel as nib

    data, ckpt = assets
    scan = _scan_copy(data, tmp_path)

    def full(img, filename):
        Path(filename).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nib, "save", full)
    out = tmp_path / "maps.nii.gz"
    r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(scan), "--method", "centre-prior", "--device", "cpu",
                 "--out", str(out)])
    msg = _one_line_error(r, "maps.nii.gz", "No space left on device")
    assert repr(str(out)) in msg and ".partial" not in msg  # the user's path, not a temporary one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii"]


def _edited_checkpoint(ckpt: Path, tmp_path: Path, edit) -> Path:
    new = tmp_path / "edited"
    shutil.copytree(ckpt, new)
    cfg = json.loads((new / "config.json").read_text())
    edit(cfg)
    (new / "config.json").write_text(json.dumps(cfg))
    return new


def _drop(key):
    return lambda c: c.pop(key)


def _set(key, value):
    return lambda c: c.__setitem__(key, value)


@pytest.mark.parametrize("edit, message", [
    (_set("windows", [[40, 0], [80, 200], [600, 2800]]), "width <= 0"),
    (_set("windows", [[40, None], [80, 200], [600, 2800]]), "finite numbers"),
    (_set("windows", []), "windows is []"),
    (_drop("target_index"), "lacks target_index"),
    (_set("target_index", 2), "target_index is 2; it must be an integer in [0, 1]"),
    (_set("target_index", -1), "target_index is -1"),
    (_set("target_index", "1"), "target_index is '1'"),
    (_set("num_classes", 0), "num_classes is 0"),
    (_set("input_size", 2 * INPUT), f"input_size is {2 * INPUT} but the model it describes takes {INPUT}x{INPUT}"),
    (_set("in_chans", 1), "in_chans is 1 but there are 3 windows"),
    (_set("task", "segmentation"), "task is 'segmentation'"),
    (_set("class_names", ["a"]), "class_names has 1 names"),
    (_set("class_names", "ab"), "class_names is 'ab'; it must be a list of strings"),
    (_set("format_version", 99), "format_version is 99, newer than this xaiseg reads (1); upgrade xaiseg"),
    (_set("format_version", "1"), "format_version is '1'"),
    (_set("normalization", {"mean": [0.5] * 3, "std": [0.5, 0.0, 0.5]}), "std must be > 0"),
    (_set("resize", 0), "resize is 0"),
    (_set("resize", 2.5), "resize is 2.5"),
])
def test_a_bad_checkpoint_config_is_one_line_before_any_work(assets, tmp_path, edit, message):
    from xaiseg import load_model
    from xaiseg.errors import CheckpointError

    data, ckpt = assets
    bad = _edited_checkpoint(ckpt, tmp_path, edit)
    with pytest.raises(CheckpointError, match=None) as info:
        load_model(bad, device="cpu")
    assert message in str(info.value) and "\n" not in str(info.value)
    out = tmp_path / "m.nii.gz"
    r = _invoke(["explain", "--checkpoint", str(bad), "--input", str(data / "ct_scans" / "001.nii"), "--out", str(out),
                 "--method", "centre-prior", "--device", "cpu"])
    _one_line_error(r, message)
    assert not out.exists()


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_checkpoint_file_that_is_a_fifo_is_one_line_not_a_hang(assets, tmp_path, no_hang, name):
    from xaiseg import load_model
    from xaiseg.errors import CheckpointError

    _, ckpt = assets
    bad = tmp_path / "ckpt"
    shutil.copytree(ckpt, bad)
    (bad / name).unlink()
    os.mkfifo(bad / name)
    with pytest.raises(CheckpointError, match=f"{name}' is a FIFO"):
        load_model(bad, device="cpu")


def test_a_scan_with_nan_voxels_or_a_nan_affine_is_refused_before_the_maps(assets, tmp_path):
    import nibabel as nib

    data, ckpt = assets
    img = nib.load(data / "ct_scans" / "001.nii")
    arr = np.asarray(img.dataobj).astype(np.float32)
    arr[3, 4, 2] = np.nan
    float_hdr = img.header.copy()
    float_hdr.set_data_dtype(np.float32)  # the phantom's CT is int16, which cannot hold NaN
    nib.save(nib.Nifti1Image(arr, img.affine, float_hdr), str(tmp_path / "nan.nii"))
    aff = img.affine.copy()
    aff[1, 1] = np.nan
    hdr = img.header.copy()
    hdr.set_sform(aff, code=1)
    hdr.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), None, hdr), str(tmp_path / "nanaff.nii"))
    shutil.copy(data / "ct_scans" / "001.nii", tmp_path / "zero.nii")
    raw = np.memmap(tmp_path / "zero.nii", dtype=np.uint8, mode="r+", shape=(348,))
    raw[80:84] = np.frombuffer(np.float32(0.0).tobytes(), np.uint8)  # pixdim[1] = 0 (nibabel would read 1 mm)
    raw.flush()
    del raw
    for name, message in (("nan.nii", "1 NaN/Inf voxel"), ("nanaff.nii", "NaN or Inf values"),
                          ("zero.nii", "pixel size (pixdim) (0.0,")):
        out = tmp_path / f"out-{name}"
        r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(tmp_path / name), "--out", str(out),
                     "--method", "centre-prior", "--device", "cpu"])
        _one_line_error(r, name, message)
        assert not out.exists()


# ---- train -----------------------------------------------------------------------------------
TINY = json.dumps({"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "num_heads": [1, 1, 2, 2]})


def _train(out: Path, *extra: str):
    return _invoke(["train", "--model-kwargs", TINY, "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
                    "--val-size", "4", "--device", "cpu", "--no-progress", "--out", str(out), *extra])


@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--lr", "nan"), ("--lr", "0"), ("--lr", "-1"),
                                           ("--weight-decay", "nan"), ("--grad-clip", "nan"), ("--grad-clip", "inf"),
                                           ("--val-fraction", "nan"), ("--windows", "40,nan"), ("--windows", "40,inf"),
                                           ("--curriculum", "nan,0.2,0.2"), ("--prevalence", "nan")])
def test_train_non_finite_numbers_are_one_line_up_front(tmp_path, option, value):
    r = _train(tmp_path / "run", option, value)
    _one_line_error(r, option)
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_folder_it_does_not_own_and_a_busy_one(tmp_path):
    out = tmp_path / "run"
    (out / "cache").mkdir(parents=True)
    (out / "cache" / "notes.txt").write_text("mine")
    before = _tree(out)
    for extra in ([], ["--resume"]):
        _one_line_error(_train(out, *extra), "was not written by `xaiseg train`", "'cache'")
    assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == ["cache"]
    busy = tmp_path / "busy"
    busy.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom xaiseg.output.lock import folder_lock\n"
                               "with folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(120)",
                               str(busy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        _one_line_error(_train(busy), "in use by another running xaiseg command")
        assert list(busy.iterdir()) == []
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_train_into_a_new_folder_marks_it_and_a_bad_setup_leaves_nothing(tmp_path):
    r = _train(tmp_path / "bad", "--model", "resnet50")  # fails during set-up, after --out was taken
    _one_line_error(r, "unknown model")
    assert not (tmp_path / "bad").exists()
    (tmp_path / "empty").mkdir()
    _one_line_error(_train(tmp_path / "empty", "--model", "resnet50"), "unknown model")
    assert list((tmp_path / "empty").iterdir()) == []


def test_train_full_disk_is_one_line_with_the_resume_hint(tmp_path, monkeypatch):
    import torch

    real = torch.save

    def full(obj, f, *a, **k):  # resume.pt: the disk fills up in the second epoch
        if (tmp_path / "run" / "resume.pt").exists():
            Path(f).write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    r = _invoke(["train", "--model-kwargs", TINY, "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "2",
                 "--val-size", "4", "--device", "cpu", "--no-progress", "--patience", "0", "--out", str(tmp_path / "run")])
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]  # the log lines go to stdout
    assert r.exit_code == 1 and "Traceback" not in r.output and len(errors) == 1, r.output
    assert errors[0].startswith("Error: cannot write") and "resume.pt" in errors[0], errors
    assert "No space left on device" in errors[0] and "--resume" in errors[0], errors
    monkeypatch.setattr(torch, "save", real)
    r = _invoke(["train", "--model-kwargs", TINY, "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "2",
                 "--val-size", "4", "--device", "cpu", "--no-progress", "--patience", "0", "--out", str(tmp_path / "run"),
                 "--resume"])
    assert r.exit_code == 0, r.output  # the hint was true: the run continues


def test_save_checkpoint_on_a_full_disk_keeps_the_old_checkpoint(assets, tmp_path, monkeypatch):
    import safetensors.torch

    from xaiseg.errors import OutputError
    from xaiseg.training import save_checkpoint
    from xaiseg.training.checkpoint import read_config

    _, ckpt = assets
    mine = tmp_path / "ckpt"
    shutil.copytree(ckpt, mine)
    before = _tree(mine)

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    from tests.conftest import tiny_swin

    with pytest.raises(OutputError, match="model.safetensors': No space left on device"):
        save_checkpoint(mine, tiny_swin(), read_config(mine))
    assert _tree(mine) == before


# ---- phantom ---------------------------------------------------------------------------------
def _phantom(out: Path, *extra: str):
    return _invoke(["phantom", str(out), "--subjects", "1", "--slices", "2", "--size", "16", "--quiet", *extra])


def test_phantom_overwrite_never_deletes_the_users_files(tmp_path):
    out = tmp_path / "ph"
    assert _phantom(out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    (out / "ct_scans" / "seg.mha").write_text("mine too")
    before = _tree(out)
    _one_line_error(_phantom(out, "--overwrite", "--seed", "1"), "'ct_scans/seg.mha'", "did not write")
    (out / "ct_scans" / "seg.mha").unlink()
    _one_line_error(_phantom(out, "--overwrite", "--seed", "1"), "'notes.txt'")
    before.pop("ct_scans/seg.mha")
    assert _tree(out) == before
    (out / "notes.txt").unlink()
    assert _phantom(out, "--overwrite", "--seed", "1").exit_code == 0
    assert json.loads((out / "phantom.json").read_text())["seed"] == 1


def test_phantom_out_that_is_a_link_is_refused_before_the_work(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    _one_line_error(_phantom(tmp_path / "link"), "is a symbolic link")
    assert list((tmp_path / "real").iterdir()) == [] and (tmp_path / "link").is_symlink()


def test_phantom_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import nibabel as nib

    calls = []

    def full(img, filename):
        calls.append(filename)
        if len(calls) == 2:
            Path(filename).write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(img, filename)

    real = nib.save
    monkeypatch.setattr(nib, "save", full)
    _one_line_error(_phantom(tmp_path / "new"), str(tmp_path / "new" / "masks" / "001.nii"), "No space left on device")
    assert list(tmp_path.iterdir()) == []  # neither OUT nor a partial folder
    old = tmp_path / "old"
    monkeypatch.setattr(nib, "save", real)
    assert _phantom(old).exit_code == 0
    before = _tree(old)
    calls.clear()
    monkeypatch.setattr(nib, "save", full)
    _one_line_error(_phantom(old, "--overwrite", "--seed", "3"), "No space left on device")
    assert _tree(old) == before and sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_phantom_into_a_busy_folder_is_refused(tmp_path):
    from xaiseg.output.lock import folder_lock

    out = tmp_path / "ph"
    out.mkdir()
    with folder_lock(out):  # another command holds it (the same process counts as another holder)
        _one_line_error(_phantom(out), "in use by another running xaiseg command")
    assert list(out.iterdir()) == []
