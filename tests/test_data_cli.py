"""``xaiseg phantom`` through click's CliRunner."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from xaiseg.cli import main


def test_phantom_command(tmp_path: Path) -> None:
    out = tmp_path / "ph"
    runner = CliRunner()
    args = ["phantom", str(out), "--subjects", "2", "--slices", "3", "--size", "32", "--seed", "4", "--quiet"]
    res = runner.invoke(main, args + ["--contact-sheet"])
    assert res.exit_code == 0, res.output
    assert (out / "ct_scans" / "001.nii").exists() and (out / "masks" / "002.nii").exists()
    assert (out / "contact_sheet.png").stat().st_size > 1000
    assert len((out / "hemorrhage_diagnosis_raw_ct.csv").read_text().strip().splitlines()) == 1 + 2 * 3
    res = runner.invoke(main, args)
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"Error: {out} is not empty; choose another folder or pass --overwrite"]
    res = runner.invoke(main, args + ["--overwrite", "--compress"])
    assert res.exit_code == 0 and (out / "ct_scans" / "001.nii.gz").exists()
    assert not (out / "ct_scans" / "001.nii").exists()
    res = runner.invoke(main, ["phantom", str(tmp_path / "x"), "--prevalence", "2"])
    assert res.exit_code == 2  # click's own range check
