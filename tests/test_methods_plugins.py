"""The third-party door: a separate distribution adds a method through its entry point only.

Instead of a slow ``pip install``, the test writes the example package's installed metadata (a
``*.dist-info`` folder whose ``entry_points.txt`` is generated from the example's own
pyproject.toml) on a temporary sys.path entry, which is exactly what importlib.metadata reads
after a real install.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import xaiseg
import xaiseg.cli
from xaiseg.registry import UnknownNameError, adapters, methods

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "xaiseg-plugin-example"


def _install_metadata(root: Path, name: str, version: str, entry_points: dict[str, str],
                      groups: dict[str, dict[str, str]] | None = None) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[xaiseg.methods]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    for group, eps in (groups or {}).items():
        lines += [f"[{group}]"] + [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def example_installed(tmp_path, monkeypatch):
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    eps = project["entry-points"]["xaiseg.methods"]
    other = {g: e for g, e in project["entry-points"].items() if g != "xaiseg.methods"}
    _install_metadata(tmp_path / "site", project["name"], project["version"], eps, other)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    methods.refresh()
    adapters.refresh()
    yield tmp_path
    monkeypatch.undo()
    methods.refresh()
    adapters.refresh()


def test_example_plugin_is_listed_and_runs(example_installed):
    assert "intensity-prior" in xaiseg.list_methods()
    info = xaiseg.method_info("intensity-prior")
    assert info.distribution == "xaiseg-plugin-example" and info.architectures == ()
    result = CliRunner().invoke(xaiseg.cli.main, ["methods"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("intensity-prior"))
    assert "xaiseg-plugin-example" in row and "any" in row
    x = torch.rand(2, 3, 16, 16)
    maps = xaiseg.get_method("intensity-prior")(torch.nn.Conv2d(3, 1, 1)).attribute(x)
    expected = x.mean(1)
    lo, hi = expected.amin(dim=(1, 2), keepdim=True), expected.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(maps, (expected - lo) / (hi - lo))


def test_not_listed_without_the_distribution():
    methods.refresh()
    assert "intensity-prior" not in xaiseg.list_methods()


def test_duplicate_name_from_another_distribution_warns(example_installed):
    _install_metadata(example_installed / "site2", "other-plugin", "1.0", {"intensity-prior": "os:getcwd"})
    import sys

    sys.path.insert(0, str(example_installed / "site2"))
    try:
        methods.refresh()
        with pytest.warns(RuntimeWarning, match="registered by both"):
            names = methods.names()
        assert names.count("intensity-prior") == 1
    finally:
        sys.path.remove(str(example_installed / "site2"))
        methods.refresh()


def test_unknown_name_lists_what_is_available():
    with pytest.raises(UnknownNameError) as err:
        xaiseg.get_method("gradcma")
    msg = str(err.value)
    assert "gradcma" in msg and "gradcam" in msg and "rollout" in msg and "saliency" in msg


def test_centre_prior_and_random_baselines():
    x = torch.zeros(3, 1, 9, 12)
    centre = xaiseg.get_method("centre-prior")(torch.nn.Identity()).attribute(x)
    # Peak at the centre, equal for every image, symmetric, falling off with distance.
    assert torch.equal(centre[0], centre[2])
    assert torch.allclose(centre[0], centre[0].flip(0)) and torch.allclose(centre[0], centre[0].flip(1))
    assert centre[0, 4, 5] == centre[0, 4, 6] == centre[0].max() and centre[0, 0, 0] == 0
    rnd = xaiseg.get_method("random")
    a = rnd(torch.nn.Identity(), seed=3).attribute(x)
    assert torch.equal(a, rnd(torch.nn.Identity(), seed=3).attribute(x))
    assert not torch.equal(a, rnd(torch.nn.Identity(), seed=4).attribute(x))
    assert not torch.equal(a[0], a[1])
    blocky = rnd(torch.nn.Identity(), smooth=3).attribute(x)
    assert torch.equal(blocky[:, 0:3, 0:3], blocky[:, :1, :1].expand(3, 3, 3))


def test_example_plugin_adds_a_model_family(example_installed):
    from xaiseg_plugin_example.tiny_transformer import TinyTransformer

    torch.manual_seed(0)
    model = TinyTransformer().eval()
    assert xaiseg.get_adapter(model).architecture == "tiny-transformer"
    x = torch.randn(2, 3, 32, 32)
    claimed = xaiseg.methods_for(model, ["hgi-sam", "swin-sam", "rollout", "grad-rollout", "gradcam", "saliency"])
    assert claimed == ["hgi-sam", "rollout", "grad-rollout", "gradcam", "saliency"]
    for name in claimed:
        maps = xaiseg.get_method(name)(model).attribute(x, target=1)
        assert maps.shape == (2, 32, 32) and float(maps.amax()) > 0
    # rollout through the plugin's adapter is the dense product over its own attention
    recs = []
    hooks = [b.softmax.register_forward_hook(lambda m, i, o: recs.append(o.detach())) for b in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    eye = torch.eye(17, dtype=torch.float64)
    R = eye.expand(2, 17, 17)
    for a in recs:
        R = (0.5 * eye + 0.5 * a.double().mean(1)) @ R
    row = R[:, 0, 1:].reshape(2, 4, 4)
    row = row - row.amin(dim=(1, 2), keepdim=True)
    row = row / row.amax(dim=(1, 2), keepdim=True)
    want = torch.nn.functional.interpolate(row[:, None].float(), size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(xaiseg.get_method("rollout")(model).attribute(x, target=1), want, atol=2e-5, rtol=1e-4)
    row = next(line for line in CliRunner().invoke(xaiseg.cli.main, ["methods"]).output.splitlines() if line.startswith("rollout "))
    assert "tiny-transformer" in row.split()[1].split(",")
