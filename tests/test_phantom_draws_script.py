"""benchmarks/phantom_draws.py: the draws are the phantoms `write_phantom` gives for those seeds
(reused only while their settings match), and every figure is recomputed here slice by slice
through ``LoadedModel.prepare``, with sklearn's AUC per draw and per head."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from xaiseg import load_model
from xaiseg.data.phantom_writer import write_phantom
from xaiseg.training import TrainConfig, train

from .benchmark_helpers import benchmark_script

TINY = {"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]}
SMALL = dict(subjects=4, slices=6, size=48)


def _script():
    return benchmark_script("phantom_draws")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("draws")
    train(TrainConfig(out=str(tmp / "ck"), data="phantom", model="tiny", model_kwargs=TINY, epochs=1, steps_per_epoch=2,
                      batch_size=4, val_size=8, device="cpu", progress=False, threads=1))
    mod = _script()
    argv = ["--checkpoint", str(tmp / "ck"), "--seeds", "4,5", "--cache", str(tmp / "cache"), "--json", str(tmp / "f.json"),
            "--subjects", str(SMALL["subjects"]), "--slices", str(SMALL["slices"]), "--size", str(SMALL["size"])]
    assert mod.main(argv) == 0
    return mod, tmp, json.loads((tmp / "f.json").read_text())[str(tmp / "ck")]


def _truth(folder: Path):
    """(label, head, HU slice) of every written slice, read with nibabel from the NIfTI files."""
    meta = json.loads((folder / "phantom.json").read_text())
    rows = []
    for s in meta["subject_list"]:
        hu = np.asarray(nib.load(folder / "ct_scans" / s["file"]).dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(folder / "masks" / s["file"]).dataobj)
        # the volume is stored (columns, rows, slices): the slice image is its transpose
        rows += [(bool(mask[..., k].any()), s["PatientNumber"], hu[..., k].T) for k in range(hu.shape[-1])]
    return rows


def test_every_figure_recomputed_slice_by_slice(run):
    mod, tmp, figures = run
    loaded = load_model(tmp / "ck", device="cpu")
    for seed in (4, 5):
        folder = tmp / "cache" / f"seed-{seed}"
        meta = json.loads((folder / "phantom.json").read_text())
        assert (meta["seed"], meta["subjects"], meta["slices_per_subject"], meta["size"]) == (seed, 4, 6, 48)
        rows = _truth(folder)
        with torch.no_grad():
            p = np.array([float(loaded.detection_probability(loaded.model(loaded.prepare(hu)[0]))[0]) for _, _, hu in rows])
        y = np.array([r[0] for r in rows])
        heads = np.array([r[1] for r in rows])
        both = [h for h in set(heads) if 0 < y[heads == h].sum() < (heads == h).sum()]
        got = figures[str(seed)]
        assert got["n"] == len(rows) and got["positives"] == int(y.sum()) and got["heads_with_both"] == len(both)
        assert got["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
        want_within = np.mean([roc_auc_score(y[heads == h], p[heads == h]) for h in both]) if both else None
        assert got["within_head_auc"] == (pytest.approx(want_within, abs=1e-6) if both else None)


def test_a_draw_is_reused_only_while_its_settings_match(run):
    mod, tmp, _ = run
    folder = tmp / "cache" / "seed-4"
    stamp = (folder / "phantom.json").stat().st_mtime_ns
    assert mod.draw(tmp / "cache", 4, **{"subjects": 4, "slices": 6, "size": 48}) == folder
    assert (folder / "phantom.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    mod.draw(tmp / "cache", 4, subjects=3, slices=6, size=48)
    assert json.loads((folder / "phantom.json").read_text())["subjects"] == 3  # other settings: rewritten
    write_phantom(folder, subjects=4, slices_per_subject=6, size=48, seed=4, prevalence=0.0, acquisition="clean",
                  progress=False, overwrite=True)  # the same seed and size, not the default phantom
    mod.draw(tmp / "cache", 4, subjects=4, slices=6, size=48)
    meta = json.loads((folder / "phantom.json").read_text())
    assert (meta["prevalence"], meta["acquisition"]) == (0.6, "random")


def test_no_head_with_both_classes_gives_no_within_figure_and_bad_input_exits_2(capsys, tmp_path):
    mod = _script()
    f = mod.draw_figures(np.array([True, False, False, False]), np.array([0.9, 0.2, 0.4, 0.1]), np.array([1, 2, 2, 3]))
    assert f["auc"] == 1.0 and f["heads_with_both"] == 0 and np.isnan(f["within_head_auc"])
    assert mod.main(["--checkpoint", "x", "--seeds", "a,b"]) == 2
    assert mod.main(["--checkpoint", str(tmp_path / "none"), "--seeds", "1", "--cache", str(tmp_path / "c"),
                     "--subjects", "1", "--slices", "2", "--size", "32"]) == 2
    assert mod.main(["--checkpoint", "x", "--seeds", "1,-2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and err[0].startswith("error: --seeds") and "not a directory" in err[1]
    assert err[2].startswith("error: --seeds")


def test_bad_targets_fail_in_one_line_before_any_draw_is_written(run, capsys, tmp_path):
    mod, tmp, _ = run
    small = ["--subjects", "1", "--slices", "2", "--size", "32", "--seeds", "1"]
    assert mod.main(["--checkpoint", str(tmp / "ck"), "--cache", str(tmp_path / "c"), "--json",
                     str(tmp_path / "no" / "f.json"), *small]) == 2
    assert not (tmp_path / "c").exists()
    (tmp_path / "c" / "seed-1").mkdir(parents=True)
    (tmp_path / "c" / "seed-1" / "phantom.json").write_text("{bad")  # not a phantom written here: never replaced
    assert mod.main(["--checkpoint", str(tmp / "ck"), "--cache", str(tmp_path / "c"), *small]) == 2
    assert (tmp_path / "c" / "seed-1" / "phantom.json").read_text() == "{bad"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err) and "--json" in err[0]
