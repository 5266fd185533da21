"""Registry: entry points, lazy loading, family variants, unknown and duplicate names."""
from __future__ import annotations

import warnings

import pytest
from click.testing import CliRunner

import xaiseg
from xaiseg.cli import main
from xaiseg.registry import Registry, UnknownNameError, methods


def test_builtin_methods_come_from_entry_points():
    names = xaiseg.list_methods()
    assert "hgi-sam" in names and "swin-sam" in names
    cls = xaiseg.get_method("hgi-sam")
    assert issubclass(cls, xaiseg.Attribution)
    assert cls.needs_gradients and {"swin", "swinv2", "vit"} <= set(xaiseg.method_info("hgi-sam").architectures)
    assert methods.distribution("hgi-sam") == "xaiseg"
    # the framework itself never imports the plugin package; the registry did, on demand
    assert cls.__module__.startswith("xaiseg_plugins")


def test_unknown_name_lists_available():
    with pytest.raises(UnknownNameError) as err:
        xaiseg.get_method("hgi-sma")
    msg = str(err.value)
    assert "hgi-sma" in msg and "hgi-sam" in msg and "swin-sam" in msg


def test_in_process_registration_warns_on_duplicate():
    reg: Registry[object] = Registry("xaiseg.nonexistent-group", "thing")
    reg.register("a", 1)
    with pytest.warns(RuntimeWarning, match="already registered"):
        reg.register("a", 2)
    assert reg.get("a") == 2
    assert reg.names() == ["a"]


def test_family_variants_are_resolved_by_the_family():
    class Family:
        @classmethod
        def variant(cls, name):
            return ("built", name)

        @classmethod
        def variants(cls):
            return ["X"]

    reg: Registry[object] = Registry("xaiseg.nonexistent-group", "thing")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg.register("fam", Family)
    assert reg.get("fam:X") == ("built", "X")
    with pytest.raises(UnknownNameError, match="fam"):
        reg.get("nofam:X")


def test_cli_methods_lists_columns():
    res = CliRunner().invoke(main, ["methods"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:4] == ["NAME", "FAMILIES", "GRADIENTS", "PROVIDED"]
    row = next(line for line in lines if line.startswith("hgi-sam "))
    families = row.split()[1].split(",")
    assert {"swin", "swinv2", "vit"} <= set(families) and " yes " in row and " xaiseg " in row and "HGI-SAM" in row
    # swin-sam needs shifted windows: no ViT family; saliency is model-agnostic
    assert "vit" not in next(line for line in lines if line.startswith("swin-sam ")).split()[1].split(",")
    assert next(line for line in lines if line.startswith("saliency ")).split()[1] == "any"
    res = CliRunner().invoke(main, ["methods", "--json"])
    import json

    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["swin-sam"]["needs_gradients"] is False


def test_cli_version_and_help():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and xaiseg.__version__ in res.output
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "methods" in res.output
