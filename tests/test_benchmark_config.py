"""BenchmarkConfig: each option written once — the click command is built from its fields, the
library call takes the same names, run.json's config is derived from it."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from xaiseg.benchmark import DEFAULT_METHODS, BenchmarkConfig
from xaiseg.cli import main
from xaiseg.cli.benchmark_cmd import benchmark, config_from_cli
from xaiseg.errors import ConfigError
from xaiseg.training.checkpoint import resolve_device


def _parse(args):
    """What click parses from ``args``, without running the command."""
    ctx = benchmark.make_context("benchmark", list(args))
    return ctx.params


def test_every_command_line_field_is_one_option_and_maps_back():
    names = {p.name for p in benchmark.params}
    for f in BenchmarkConfig.cli_fields():
        assert (f.metadata["cli"] or f"--{f.name}".replace("_", "-")).lstrip("-").replace("-", "_") in names
    assert len(benchmark.params) == len(BenchmarkConfig.cli_fields())
    assert config_from_cli(_parse([])).to_dict() == BenchmarkConfig().to_dict()
    cfg = config_from_cli(_parse(["--no-figures", "--folds", "3", "--threshold", "otsu", "--methods", "rollout,gradcam",
                                  "--negative-ratio", "2"]))
    assert cfg == BenchmarkConfig(figures=False, folds=3, threshold="otsu", methods="rollout,gradcam", negative_ratio=2.0)
    assert cfg.method_labels == ["rollout", "gradcam"] and cfg.strategy.spec == "otsu"


def test_the_default_methods_are_one_list():
    import importlib.util
    import sys
    from pathlib import Path

    assert BenchmarkConfig().method_labels == list(DEFAULT_METHODS)
    methods_option = next(p for p in benchmark.params if p.name == "methods")
    assert "Default: " + ",".join(DEFAULT_METHODS) + "." in methods_option.help
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"
    spec = importlib.util.spec_from_file_location("speed_defaults", path)
    speed = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = speed
    spec.loader.exec_module(speed)
    assert speed.DEFAULT_METHODS is DEFAULT_METHODS


def test_recorded_options_are_what_the_results_depend_on():
    rec = BenchmarkConfig(out="x", resume=False, keep_cache=True, figures=False).recorded()
    assert set(rec) == {"data", "layout", "checkpoint", "methods", "threshold", "folds", "brain_mask", "device",
                        "batch_size", "limit", "positives_only", "negative_ratio", "seed", "skip_bad"}
    assert rec["methods"] == list(DEFAULT_METHODS) and rec["threshold"] == "grid"


@pytest.mark.parametrize("kw,message", [
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"limit": 0}, "--limit must be at least 1"),
    ({"seed": -1}, "--seed must be >= 0"),
    ({"negative_ratio": -1.0}, "--negative-ratio must be a number >= 0"),
    ({"layout": "dicom"}, "--layout 'dicom' is not a data layout"),
    ({"resume": True}, "--resume needs --out"),
    ({"methods": ""}, "--methods is empty"),
    ({"methods": "rollout,rollout"}, "lists a method twice"),
    ({"threshold": "fixed:2"}, "value must lie in [0, 1]"),
])
def test_a_bad_option_fails_when_the_config_is_built(kw, message):
    with pytest.raises(ConfigError) as e:
        BenchmarkConfig(**kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_one_device_resolution_with_one_line_errors():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="--device 'cdua'"):
        resolve_device("cdua")
    r = CliRunner().invoke(main, ["benchmark", "--device", "cdua", "--methods", "rollout", "--limit", "2"])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "cdua" in r.output, r.output
