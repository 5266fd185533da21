"""The embedded default's cache: where it lives, generated once, never half-written."""
from __future__ import annotations

import pytest

from xaiseg.benchmark import defaults
from xaiseg.errors import CheckpointError, DataError


def test_cache_root_honours_xaiseg_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XAISEG_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert defaults.cache_root() == tmp_path / "a"
    monkeypatch.delenv("XAISEG_CACHE")
    assert defaults.cache_root() == tmp_path / "b" / "xaiseg"


def test_phantom_is_generated_once_and_keyed_by_its_parameters(monkeypatch, tmp_path):
    monkeypatch.setenv("XAISEG_CACHE", str(tmp_path))
    params = {"subjects": 2, "slices_per_subject": 2, "size": 32, "prevalence": 0.5, "seed": 1}
    calls = []
    from xaiseg.data import phantom_writer

    real = phantom_writer.write_phantom

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(phantom_writer, "write_phantom", counting)
    p1 = defaults.default_phantom(params, progress=False)
    p2 = defaults.default_phantom(params, progress=False)
    assert p1 == p2 and len(calls) == 1 and (p1 / "ct_scans").is_dir() and (p1 / ".complete").exists()
    assert defaults.phantom_dir({**params, "seed": 2}) != p1
    monkeypatch.setattr(phantom_writer, "PHANTOM_VERSION", -1)  # a changed generator never reuses it
    assert defaults.phantom_dir(params) != p1
    monkeypatch.undo()
    monkeypatch.setenv("XAISEG_CACHE", str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [p1.name]  # no temporary folder left behind


def test_interrupted_generation_leaves_no_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XAISEG_CACHE", str(tmp_path))
    from xaiseg.data import phantom_writer

    def boom(out, **k):
        (out / "partial").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(phantom_writer, "write_phantom", boom)
    with pytest.raises(KeyboardInterrupt):
        defaults.default_phantom({"subjects": 1, "slices_per_subject": 1, "size": 32, "prevalence": 0.0, "seed": 0},
                                 progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resolve_paths():
    with pytest.raises(DataError, match="does not exist"):
        defaults.resolve_data("/no/such/data", "auto")
    with pytest.raises(CheckpointError, match="does not exist"):
        defaults.resolve_checkpoint("/no/such/ckpt")
    from xaiseg.training import default_checkpoint

    if default_checkpoint().is_dir():
        assert defaults.resolve_checkpoint(None) == default_checkpoint()
    else:
        with pytest.raises(CheckpointError, match="default checkpoint is missing"):
            defaults.resolve_checkpoint(None)
