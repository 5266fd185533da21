"""A ViT trained by ``xaiseg train`` on a written phantom rebuilds through ``xaiseg.load_model``
and is benchmarked with ``xaiseg benchmark --checkpoint``: every default method that supports
the family runs, the one that does not (swin-sam) is left out with one line."""
from __future__ import annotations

import csv
import json

from click.testing import CliRunner

import xaiseg
from xaiseg.cli import main

from .benchmark_helpers import make_phantom

VIT = json.dumps({"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2})


def test_vit_checkpoint_trains_and_is_benchmarked(tmp_path):
    data = make_phantom(tmp_path / "phantom")
    ck = tmp_path / "ck"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", "vit-tiny", "--model-kwargs", VIT,
                                    "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress",
                                    "--out", str(ck)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "timm vit_tiny_patch16_224" in res.output
    loaded = xaiseg.load_model(ck, device="cpu")
    assert xaiseg.get_adapter(loaded.model).architecture == "vit" and loaded.input_size == 32

    out = tmp_path / "bench"
    res = CliRunner().invoke(main, ["benchmark", "--data", str(data), "--checkpoint", str(ck), "--out", str(out),
                                    "--threshold", "otsu", "--limit", "8", "--no-figures", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    left_out = [line for line in res.output.splitlines() if "left out of the default methods" in line]
    assert left_out == ["swin-sam is left out of the default methods: swin-sam needs shifted-windows, which vit models do not have"]
    assert "Traceback" not in res.output
    with open(out / "summary.csv") as fh:
        methods = [row["method"] for row in csv.DictReader(fh)]
    assert methods and set(methods) == {"hgi-sam", "gradcam", "rollout", "grad-rollout", "saliency", "centre-prior"}
