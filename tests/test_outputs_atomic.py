"""Atomic output files (xaiseg.output.atomic): what every writer leaves on disk when it succeeds, and
when the disk fills up half-way (ENOSPC, simulated by a writer that writes half and fails)."""
from __future__ import annotations

import errno
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from xaiseg.output import atomic
from xaiseg.errors import OutputError


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _nifti():
    import nibabel as nib

    return nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.diag([2.0, 3.0, 4.0, 1.0]))


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    return fig


def _tensors():
    import torch

    return {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}


# name, call(path), read(path) -> comparable value, expected value, the library function that writes
WRITERS = {
    "text": (lambda p: atomic.write_text(p, "héllo\n"), lambda p: p.read_text(encoding="utf-8"), "héllo\n"),
    "json": (lambda p: atomic.write_json(p, {"a": [1, 2]}), lambda p: json.loads(p.read_text()), {"a": [1, 2]}),
    "csv": (lambda p: atomic.write_csv(p, [{"x": 1, "y": "b"}], ["x", "y"]), lambda p: p.read_bytes(), b"x,y\r\n1,b\r\n"),
    "npz": (lambda p: atomic.save_npz(p, a=np.arange(3)), lambda p: np.load(p)["a"].tolist(), [0, 1, 2]),
    "nifti": (lambda p: atomic.save_nifti(_nifti(), p), lambda p: __import__("nibabel").load(p).get_fdata().sum(), 276.0),
    "figure": (lambda p: atomic.save_figure(_figure(), p), lambda p: p.read_bytes()[:8], b"\x89PNG\r\n\x1a\n"),
    "safetensors": (lambda p: atomic.save_safetensors(_tensors(), p),
                    lambda p: __import__("safetensors.torch").torch.load_file(str(p))["w"].sum().item(), 15.0),
    "torch": (lambda p: atomic.save_torch(_tensors(), p),
              lambda p: __import__("torch").load(p, weights_only=True)["w"].sum().item(), 15.0),
}
SUFFIX = {"text": ".txt", "json": ".json", "csv": ".csv", "npz": ".npz", "nifti": ".nii.gz", "figure": ".png",
          "safetensors": ".safetensors", "torch": ".pt"}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_writes_the_file_and_nothing_else(tmp_path, kind):
    write, read, expected = WRITERS[kind]
    path = tmp_path / "sub" / f"out{SUFFIX[kind]}"  # the folder is created
    assert write(path) == path
    assert read(path) == expected
    assert _entries(path.parent) == [path.name]  # no temporary left
    mode = path.stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # not mkstemp's private 0600


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_nii_gz_is_compressed_and_a_nii_is_not(tmp_path):
    atomic.save_nifti(_nifti(), tmp_path / "a.nii.gz")
    atomic.save_nifti(_nifti(), tmp_path / "b.nii")
    assert (tmp_path / "a.nii.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress((tmp_path / "a.nii.gz").read_bytes())[:4] == (tmp_path / "b.nii").read_bytes()[:4]


def _library_writer(kind):
    """(owner, attribute) of the library function that writes ``kind``."""
    import pathlib

    if kind in ("text", "json", "csv"):
        return pathlib.Path, "write_text"
    if kind == "npz":
        import zipfile

        return zipfile, "ZipFile"  # save_npz writes the archive itself, at its own deflate level
    if kind == "nifti":
        import nibabel

        return nibabel, "save"
    if kind == "figure":
        from matplotlib.figure import Figure

        return Figure, "savefig"
    if kind == "safetensors":
        import safetensors.torch

        return safetensors.torch, "save_file"
    import torch

    return torch, "save"


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_full_disk_leaves_the_old_file_and_says_one_line(tmp_path, monkeypatch, kind):
    write, _read, _expected = WRITERS[kind]
    path = tmp_path / f"out{SUFFIX[kind]}"
    path.write_bytes(b"the user's old file")

    def full_disk(*args, **kwargs):  # writes part of the file, then fails as a full disk does
        paths = [a.name if hasattr(a, "fh") else a for a in args]  # save_torch passes a file object
        target = next(a for a in paths if ".partial" in str(a))
        with open(str(target), "wb") as fh:
            fh.write(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    owner, name = _library_writer(kind)
    monkeypatch.setattr(owner, name, full_disk)
    with pytest.raises(OutputError) as info:
        write(path)
    msg = str(info.value)
    assert msg.count("\n") == 0 and str(path) in msg and "No space left on device" in msg
    assert path.read_bytes() == b"the user's old file"
    assert _entries(tmp_path) == [path.name]


def test_enospc_in_a_library_writer_and_the_resume_hint(tmp_path):
    def writer(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    target = tmp_path / "maps" / "001.nii.gz"
    with pytest.raises(OutputError, match=r"cannot write .*001\.nii\.gz': No space left on device; run again with --resume$"):
        atomic.atomic_write(target, writer, hint="run again with --resume")
    assert _entries(target.parent) == []


def test_an_interrupt_removes_the_temporary_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")

    def writer(tmp: Path) -> None:
        tmp.write_text("new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(path, writer)
    assert path.read_text() == "old" and _entries(tmp_path) == ["a.json"]


def test_an_unwritable_folder_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(OutputError, match="cannot write .*Permission denied"):
            atomic.write_text(ro / "x.txt", "x")
    finally:
        ro.chmod(0o700)


def test_a_value_json_cannot_hold_fails_before_the_file_is_touched(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        atomic.write_json(path, {"x": object()})
    assert path.read_text() == "old" and _entries(tmp_path) == ["a.json"]


_FSIZE_SCRIPT = """
import resource, signal, sys
import numpy as np, torch
from xaiseg.output import atomic
from xaiseg.errors import OutputError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
big = torch.from_numpy(np.random.default_rng(0).random((64, 64, 16)).astype('float32'))
writers = {'safetensors': lambda p: atomic.save_safetensors({'w': big}, p + '.safetensors'),
           'torch': lambda p: atomic.save_torch({'w': big}, p + '.pt'),
           'npz': lambda p: atomic.save_npz(p + '.npz', a=big.numpy())}
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
for kind, write in writers.items():
    try:
        write(sys.argv[1] + '/' + kind)
        print(kind, 'wrote')
    except OutputError as exc:
        print(kind, 'OutputError', exc)
    except BaseException as exc:
        print(kind, 'other', type(exc).__name__)
"""


@pytest.mark.skipif(os.name != "posix", reason="needs RLIMIT_FSIZE")
def test_the_real_library_writers_failing_on_disk_are_one_line(tmp_path):
    # no mock: the libraries' own writers (safetensors' Rust one, torch's zip one) hit a real
    # write error; each must come out as the one OutputError line, with nothing left behind
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert res.returncode == 0, res.stderr
    for kind in ("safetensors", "torch", "npz"):
        assert lines[kind].startswith("OutputError cannot write"), (kind, lines[kind])
        assert "File too large" in lines[kind]
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("level", [0, 1, 9])
def test_save_npz_reads_back_exactly_with_numpy_at_every_level(tmp_path, level):
    """save_npz writes its own zip (numpy's savez_compressed has no level): numpy.load must read
    every array back bit for bit, in the compression asked for."""
    import zipfile

    rng = np.random.default_rng(0)
    arrays = {"maps": rng.random((3, 16, 16)).astype(np.float16), "curves": np.full((3, 5), np.nan),
              "bits0": np.packbits(rng.random(100) > 0.5), "shape0": np.asarray((10, 10))}
    arrays["curves"][1] = rng.random(5)
    p = atomic.save_npz(tmp_path / "u.npz", level=level, **arrays)
    with np.load(p) as z:
        assert sorted(z.files) == sorted(arrays)
        for k, a in arrays.items():
            assert z[k].dtype == a.dtype and z[k].shape == a.shape
            np.testing.assert_array_equal(z[k].view(np.uint8), a.view(np.uint8))
    with zipfile.ZipFile(p) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED}
