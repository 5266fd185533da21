"""The benchmark's output folder (docs/outputs.md): only a new, empty or benchmark folder is
written, one run at a time; a failed attempt is recorded as failed; a full disk is one line
with the resume hint; a passed-in data set with NaN pixels is bad input."""
from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest

from xaiseg.benchmark import run
from xaiseg.errors import ConfigError, DataError, OutputError

from .benchmark_helpers import make_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory, "out-assets")


def _run(assets, out, **kw):
    data, ckpt = assets
    args = dict(data=data, checkpoint=ckpt, methods=["centre-prior"], threshold="otsu", batch_size=4, limit=8,
                out=out, figures=False, progress=False, device="cpu")
    return run(**{**args, **kw})


def test_a_folder_of_other_files_is_refused_and_kept(assets, tmp_path):
    out = tmp_path / "o"
    (out / "cache").mkdir(parents=True)
    (out / "cache" / "notes.txt").write_text("mine")
    for resume in (False, True):
        with pytest.raises(ConfigError, match="not written by `xaiseg benchmark`"):
            _run(assets, out, resume=resume)
    assert [p.name for p in out.rglob("*")] == ["cache", "notes.txt"]


def test_a_busy_folder_is_refused(assets, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom xaiseg.output.lock import folder_lock\n"
                               "with folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(120)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match="in use by another running xaiseg command"):
            _run(assets, out)
        assert list(out.iterdir()) == []
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_failed_attempt_is_marked_failed_and_a_full_disk_is_one_line(assets, tmp_path, monkeypatch):
    out = tmp_path / "o"

    def crash(method, batch):
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        _run(assets, out, _after_unit=crash)
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == "simulated crash"
    def full(path, hint=None, level=1, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("xaiseg.benchmark.store.save_npz", full)
    with pytest.raises(OutputError, match=r"No space left on device; free some space, then run the same command "
                                          r"with --resume"):
        _run(assets, out, resume=True)
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    assert json.loads(_run(assets, out, resume=True).paths["run_json"].read_text())["status"] == "complete"


def test_nan_pixels_in_a_passed_in_dataset_are_bad_input(assets, tmp_path):
    from xaiseg.data import open_dataset

    data, ckpt = assets
    ds = open_dataset(data, "physionet")

    class WithNaN:
        records = ds.records
        has_masks = True

        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            item = ds[i]
            item["image"] = item["image"].clone()
            item["image"][0, 0] = float("nan")
            return item

    with pytest.raises(DataError, match="1 NaN/Inf voxel"):
        run(dataset=WithNaN(), checkpoint=ckpt, methods=["centre-prior"], threshold="otsu", limit=4, batch_size=4,
            out=tmp_path / "o", figures=False, progress=False, device="cpu")


def test_a_full_disk_while_caching_maps_says_free_space_then_resume(assets, tmp_path, monkeypatch):
    # the real writer: numpy fails inside xaiseg.output.atomic, which already makes it an OutputError
    out = tmp_path / "o"

    def full(file, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("numpy.lib.format.write_array", full)  # what save_npz's zip writer calls per array
    with pytest.raises(OutputError) as info:
        _run(assets, out)
    msg = str(info.value)
    assert "No space left on device; free some space, then run the same command with --resume" in msg
    assert "input is fixed" not in msg and "\n" not in msg
    assert not list(out.rglob("*partial*"))
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    assert json.loads(_run(assets, out, resume=True).paths["run_json"].read_text())["status"] == "complete"
