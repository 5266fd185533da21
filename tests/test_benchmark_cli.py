"""`xaiseg benchmark` / `xaiseg explain` on the command line: a small run prints the summary
table; bad arguments give one-line errors and exit status 1."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from xaiseg.cli import main

from .benchmark_helpers import make_assets, make_checkpoint


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory, "cli-assets")


def _invoke(args):
    return CliRunner().invoke(main, args)


def test_small_run_prints_the_summary_table(assets, tmp_path):
    data, ckpt = assets
    r = _invoke(["benchmark", "--data", str(data), "--checkpoint", str(ckpt), "--methods", "swin-sam",
                 "--threshold", "otsu", "--positives-only", "--limit", "6", "--out", str(tmp_path / "o"),
                 "--no-figures", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "method" in r.output and "swin-sam" in r.output and "classifier detection: AUC" in r.output
    assert json.loads((tmp_path / "o" / "run.json").read_text())["status"] == "complete"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--methods", "hgi-sam,nope"], "Error: unknown method 'nope'; available:"),
        (["--threshold", "fixed:2"], "Error: threshold fixed:2: value must lie in [0, 1]"),
        (["--threshold", "magic"], "Error: unknown threshold strategy 'magic'"),
        (["--brain-mask", "/no/such/dir"], "Error: --brain-mask must be auto, none or a folder"),
        (["--folds", "9"], "Error: 9 subject-wise folds need at least 9 subjects"),
        (["--batch-size", "0"], "Error: --batch-size must be at least 1"),
        (["--seed", "-3"], "Error: --seed must be >= 0"),
        (["--negative-ratio", "nan"], "Error: --negative-ratio must be a number >= 0"),
        (["--negative-ratio", "inf"], "Error: --negative-ratio must be a number >= 0"),
        (["--resume"], "Error: --resume: "),
    ],
)
def test_bad_options_are_one_line_errors(assets, tmp_path, extra, message):
    data, ckpt = assets
    r = _invoke(["benchmark", "--data", str(data), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                 "--no-figures", "--methods", "swin-sam", *extra])
    assert r.exit_code == 1, r.output
    assert r.output.startswith(message), r.output
    assert r.output.strip().count("\n") == 0 and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_an_out_that_is_a_file_is_refused_before_any_work(assets, tmp_path):
    data, ckpt = assets
    f = tmp_path / "afile.txt"
    f.write_text("keep")
    for out, why in ((f, "is a file; give a folder"), (f / "sub", "which is a file, not a folder")):
        r = _invoke(["benchmark", "--data", str(data), "--checkpoint", str(ckpt), "--out", str(out), "--methods", "swin-sam"])
        assert r.exit_code == 1 and r.output.count("\n") == 1 and why in r.output, r.output
    assert f.read_text() == "keep"


def test_usage_errors_are_one_line_too():
    for args in (["phantom", "p0", "--subjects", "0"], ["benchmrk"], ["benchmark", "--layout", "nifti"]):
        r = _invoke(args)
        assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("Error: "), r.output
        assert "--help')" in r.output


def test_missing_data_and_wrong_checkpoints_are_one_line_errors(assets, tmp_path):
    data, ckpt = assets
    base = ["benchmark", "--out", str(tmp_path / "o"), "--methods", "swin-sam", "--no-figures"]
    r = _invoke(base + ["--data", str(tmp_path / "nothing"), "--checkpoint", str(ckpt)])
    assert r.exit_code == 1 and r.output.startswith("Error: data path") and "does not exist" in r.output
    r = _invoke(base + ["--data", str(data), "--checkpoint", str(tmp_path / "nockpt")])
    assert r.exit_code == 1 and r.output.startswith("Error: checkpoint") and "does not exist" in r.output
    # a checkpoint whose weights belong to another model than its config describes
    other = make_checkpoint(tmp_path / "other")
    cfg = json.loads((other / "config.json").read_text())
    cfg["model_kwargs"]["embed_dim"] = 16
    (other / "config.json").write_text(json.dumps(cfg))
    r = _invoke(base + ["--data", str(data), "--checkpoint", str(other)])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and r.output.strip().count("\n") == 0, r.output
    # a folder that is no checkpoint at all
    r = _invoke(base + ["--data", str(data), "--checkpoint", str(data)])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and r.output.strip().count("\n") == 0, r.output


def test_explain_command(assets, tmp_path):
    import nibabel as nib
    import numpy as np

    data, ckpt = assets
    out = tmp_path / "m.nii.gz"
    r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(data / "ct_scans" / "001.nii"),
                 "--method", "swin-sam", "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    ref = nib.load(data / "ct_scans" / "001.nii")
    m = nib.load(out)
    assert m.shape == ref.shape and np.allclose(m.affine, ref.affine)
    fresh = tmp_path / "new.nii.gz"
    r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(tmp_path / "none.nii"), "--out", str(fresh)])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "file not found" in r.output
    r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(data / "ct_scans" / "001.nii"),
                 "--method", "nope", "--out", str(fresh)])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown method 'nope'")
    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    for bad, why in ((tmp_path / "maps", "must end in .nii or .nii.gz"), (blocker / "m.nii", "which is a file"),
                     (tmp_path, "is a folder")):
        r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(data / "ct_scans" / "001.nii"), "--out", str(bad)])
        assert r.exit_code == 1 and r.output.count("\n") == 1 and why in r.output, r.output
    assert not (tmp_path / "maps").exists() and not (tmp_path / "maps.nii").exists()


def test_skip_bad_counts_and_reports(assets, tmp_path, recwarn):
    import shutil

    import nibabel as nib
    import numpy as np

    data, ckpt = assets
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    victim = sorted((broken / "masks").iterdir())[0]
    img = nib.load(str(broken / "ct_scans" / victim.name))
    nib.save(nib.Nifti1Image(np.zeros((7, 7, img.shape[2]), np.uint8), img.affine), str(victim))
    args = ["benchmark", "--data", str(broken), "--checkpoint", str(ckpt), "--methods", "swin-sam", "--threshold", "otsu",
            "--limit", "6", "--no-figures", "--device", "cpu"]
    r = _invoke([*args, "--out", str(tmp_path / "a")])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and victim.name in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    r = _invoke([*args, "--skip-bad", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "--skip-bad: skipped 1 bad item(s)" in r.output and victim.name in r.output
    cfg = json.loads((tmp_path / "b" / "run.json").read_text())["config"]
    assert cfg["skip_bad"] is True and len(cfg["skipped"]) == 1
    assert not [w for w in recwarn if "bad item" in str(w.message)]  # reported once, by the command


def test_a_bad_voxel_found_mid_run_says_how_to_continue(assets, tmp_path):
    import shutil

    import nibabel as nib
    import numpy as np

    data, ckpt = assets
    broken = tmp_path / "nan"
    shutil.copytree(data, broken)
    victim = sorted((broken / "ct_scans").iterdir())[-1]
    img = nib.load(str(victim))
    vol = np.asarray(img.dataobj, dtype=np.float32).copy()
    vol[0, 0, :] = np.nan  # every slice of the last subject: seen only when a slice is read
    nib.save(nib.Nifti1Image(vol, img.affine), str(victim))  # float32: the NaN survives
    out = tmp_path / "o"
    r = _invoke(["benchmark", "--data", str(broken), "--checkpoint", str(ckpt), "--methods", "swin-sam",
                 "--threshold", "otsu", "--no-figures", "--device", "cpu", "--batch-size", "2", "--out", str(out)])
    assert r.exit_code == 1, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and victim.name in last and f"--resume --out {out}" in last, r.output


def test_variants_of_one_method_run_side_by_side(assets, tmp_path):
    import csv as _csv

    data, ckpt = assets
    out = tmp_path / "v"
    spec = 'swin-sam{"stages": [0, 1]}'
    r = _invoke(["benchmark", "--data", str(data), "--checkpoint", str(ckpt), "--methods", f"swin-sam,{spec}",
                 "--threshold", "otsu", "--positives-only", "--limit", "6", "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    label = 'swin-sam{"stages":[0,1]}'
    rows = list(_csv.DictReader(open(out / "slices.csv")))
    assert {row["method"] for row in rows} == {"swin-sam", label}
    dice = {m: [float(row["dice"]) for row in rows if row["method"] == m] for m in ("swin-sam", label)}
    assert dice["swin-sam"] != dice[label]  # the options reached the method
    assert json.loads((out / "run.json").read_text())["config"]["methods"] == ["swin-sam", label]
    assert len(list((out / "figures").glob("montage-swin-sam_stages*.png"))) == 1
    r = _invoke(["benchmark", "--data", str(data), "--checkpoint", str(ckpt), "--out", str(tmp_path / "w"),
                 "--methods", 'swin-sam{"stagez": [0]}', "--no-figures"])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "unknown option(s) for swin-sam: stagez (it takes: stages)" in r.output
    r = _invoke(["explain", "--checkpoint", str(ckpt), "--input", str(data / "ct_scans" / "001.nii"),
                 "--method", spec, "--out", str(tmp_path / "m.nii.gz"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
