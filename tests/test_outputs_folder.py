"""Output folders (xaiseg.output.folder, xaiseg.output.lock, xaiseg.output.paths): a command writes only into
a folder that is new, empty or its own, one command at a time, and never over an input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xaiseg.errors import ConfigError, OutputError
from xaiseg.output.lock import folder_lock
from xaiseg.output.folder import MARKER, Owner, check_output_folder, json_record, output_folder, unexpected_files
from xaiseg.output.paths import check_new_file

TRAIN = Owner("xaiseg train", (json_record("config.json", "format", "xaiseg-checkpoint"),))
BENCH = Owner("xaiseg benchmark")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_new_and_empty_folders_are_taken(tmp_path):
    assert check_output_folder(tmp_path / "new", TRAIN) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", TRAIN)
    assert not (tmp_path / "new").exists()  # checking writes nothing


def test_a_folder_of_the_users_files_is_refused_in_one_line(tmp_path):
    out = tmp_path / "out"
    (out / "cache").mkdir(parents=True)
    (out / "cache" / "notes.txt").write_text("mine")
    before = _tree(out)
    for owner in (TRAIN, BENCH):
        with pytest.raises(ConfigError, match=r"is not empty and was not written by `xaiseg .*` \(it holds 'cache'\)") as info:
            with output_folder(out, owner):
                raise AssertionError("the block must not run")
        assert "\n" not in str(info.value)
    assert _tree(out) == before and sorted(p.name for p in out.iterdir()) == ["cache"]


def test_own_folders_by_marker_or_by_an_older_record(tmp_path):
    a = tmp_path / "a"
    with output_folder(a, TRAIN) as p:
        (p / "x.txt").write_text("run")
    mark = json.loads((a / MARKER).read_text())
    assert mark["written_by"] == "xaiseg train"
    check_output_folder(a, TRAIN)  # its own: accepted
    with pytest.raises(ConfigError, match="holds the output of `xaiseg train`, not of `xaiseg benchmark`"):
        check_output_folder(a, BENCH)
    old = tmp_path / "old"  # a checkpoint from before the marker existed
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"format": "xaiseg-checkpoint"}))
    check_output_folder(old, TRAIN)
    (old / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ConfigError):
        check_output_folder(old, TRAIN)
    (old / "config.json").write_text("{not json")
    with pytest.raises(ConfigError):
        check_output_folder(old, TRAIN)


def test_a_failed_run_leaves_the_folder_as_it_found_it(tmp_path):
    new = tmp_path / "deep" / "new"
    with pytest.raises(RuntimeError):
        with output_folder(new, TRAIN):
            raise RuntimeError("set-up failed")
    assert not (tmp_path / "deep").exists()  # it created both levels: both go
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError):
        with output_folder(empty, TRAIN):
            raise RuntimeError
    assert empty.is_dir() and list(empty.iterdir()) == []
    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError):
        with output_folder(kept, TRAIN) as p:
            (p / "epoch1.txt").write_text("work worth resuming")
            raise RuntimeError
    assert sorted(q.name for q in kept.iterdir()) == [MARKER, "epoch1.txt"]  # resumable: still its own
    check_output_folder(kept, TRAIN)


def test_unexpected_files_are_what_the_patterns_do_not_cover(tmp_path):
    (tmp_path / "ct_scans").mkdir()
    (tmp_path / "ct_scans" / "001.nii").write_text("x")
    (tmp_path / "ct_scans" / "notes.txt").write_text("x")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "a.npz").write_text("x")
    (tmp_path / "phantom.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "cache")
    pats = ["ct_scans/*.nii", "phantom.json"]
    assert unexpected_files(tmp_path, pats) == ["cache/", "ct_scans/notes.txt", "link"]
    assert unexpected_files(tmp_path, pats + ["cache/*.npz", "ct_scans/*.txt", "link"]) == []


_HOLDER = """
import sys, time
from xaiseg.output.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl")
def test_a_second_command_is_refused_and_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _hold(out)
    try:
        with pytest.raises(OutputError, match="is in use by another running xaiseg command") as info:
            with folder_lock(out):
                pass
        assert "\n" not in str(info.value)
        with pytest.raises(OutputError):  # the whole take-a-folder path refuses too, changing nothing
            with output_folder(out, TRAIN):
                pass
        assert list(out.iterdir()) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with folder_lock(out):  # the OS released it with the process
        pass
    assert list(out.iterdir()) == []  # no lock file left behind


def test_one_process_cannot_take_a_folder_twice(tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(OutputError):
            with folder_lock(tmp_path):
                pass
    with folder_lock(tmp_path):
        pass


def test_an_output_file_that_is_an_input_is_refused(tmp_path):
    scan = tmp_path / "scan.nii"
    scan.write_bytes(b"CT")
    (tmp_path / "link.nii").symlink_to(scan)
    os.link(scan, tmp_path / "hard.nii")
    (tmp_path / "sub").mkdir()
    for out in (scan, tmp_path / "link.nii", tmp_path / "hard.nii", tmp_path / "sub" / ".." / "scan.nii"):
        for overwrite in (False, True):
            with pytest.raises(ConfigError, match="is the input .*would destroy the input"):
                check_new_file(out, [scan], overwrite=overwrite)
    # the input given through a link is recognised as well
    with pytest.raises(ConfigError, match="is the input"):
        check_new_file(scan, [tmp_path / "link.nii"], overwrite=True)
    assert scan.read_bytes() == b"CT"


def test_an_existing_output_file_is_replaced_only_when_asked(tmp_path):
    gt = tmp_path / "gt.nii"
    gt.write_bytes(b"mask")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        check_new_file(gt, [tmp_path / "scan.nii"])
    assert check_new_file(gt, [tmp_path / "scan.nii"], overwrite=True) == gt
    os.mkfifo(tmp_path / "fifo.nii")
    with pytest.raises(ConfigError, match="not a regular file"):
        check_new_file(tmp_path / "fifo.nii", [], overwrite=True)
    check_new_file(tmp_path / "new.nii", [gt])
