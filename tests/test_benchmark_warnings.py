"""The benchmark says, in one line before any work, when its classifier ended training near chance
(its maps then show contrast, not evidence), and stays quiet for a classifier that learned."""
from __future__ import annotations

import json

from click.testing import CliRunner

from xaiseg.cli import main

from .benchmark_helpers import make_checkpoint, make_phantom


def _bench(data, ckpt, out):
    args = ["benchmark", "--data", str(data), "--checkpoint", str(ckpt), "--methods", "centre-prior",
            "--folds", "2", "--limit", "12", "--no-figures", "--device", "cpu", "--out", str(out)]
    return CliRunner().invoke(main, args)


def test_benchmark_warns_once_for_a_near_chance_checkpoint(tmp_path):
    data, ckpt = make_phantom(tmp_path / "ph"), make_checkpoint(tmp_path / "ckpt")
    cfg_path = ckpt / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["metrics"] = {"val_auc": 0.93, "val_sensitivity": 0.8, "val_specificity": 0.9}
    cfg_path.write_text(json.dumps(cfg))
    r = _bench(data, ckpt, tmp_path / "fine")
    assert r.exit_code == 0, r.output
    assert "warning:" not in r.output
    cfg["metrics"] = {"val_auc": 0.61, "val_sensitivity": 1.0, "val_specificity": 0.1}
    cfg_path.write_text(json.dumps(cfg))
    r = _bench(data, ckpt, tmp_path / "chance")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "validation AUC 0.610 < 0.7" in warnings[0], r.output
    assert r.output.index("warning:") < r.output.index("centre-prior")  # said before the results
