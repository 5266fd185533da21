"""--precision: what auto means on a device, and that a run really computes in what it reports."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from xaiseg.cli import main
from xaiseg.errors import ConfigError
from xaiseg.training import TrainConfig, train
from xaiseg.training import precision as P
from xaiseg.training.precision import cpu_has_bf16  # the real one: conftest pins P.cpu_has_bf16 to False

X86_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_AMX = "flags\t\t: fpu avx2 avx512f amx_tile amx_bf16\n"
X86_PLAIN = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
ARM_PLAIN = "Features\t: fp asimd evtstrm aes\n"


@pytest.mark.parametrize("text, expected", [(X86_BF16, True), (X86_AMX, True), (X86_PLAIN, False), (ARM_BF16, True),
                                            (ARM_PLAIN, False), ("", False), ("model name\t: x\n", False)])
def test_cpu_bf16_flags(text, expected):
    assert cpu_has_bf16(text) is expected


def test_auto_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(P, "cpu_has_bf16", lambda cpuinfo=None: True)
    assert P.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(P, "cpu_has_bf16", lambda cpuinfo=None: False)
    assert P.resolve_precision("auto", cpu) == "fp32"
    assert P.resolve_precision("bf16", cpu) == "bf16"  # asked for: also where it is emulated
    assert "no bf16 instructions" in P.describe("auto", cpu)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        P.resolve_precision("fp16", cpu)
    with pytest.raises(ConfigError, match="unknown --precision"):
        P.resolve_precision("fp8", cpu)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_lowers_matrix_products(precision, dtype):
    lin = torch.nn.Linear(8, 8)
    with P.autocast_factory(precision, torch.device("cpu"))():
        out = lin(torch.randn(2, 8))
    assert out.dtype == dtype and lin.weight.dtype == torch.float32


TINY = {"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2],
        "num_heads": [1, 1, 2, 2]}


def _cfg(out, precision, **kw) -> TrainConfig:
    return TrainConfig(out=str(out), data="phantom", model="tiny", model_kwargs=dict(TINY), epochs=1,
                       steps_per_epoch=3, batch_size=4, val_size=8, seed=0, device="cpu", progress=False, workers=0,
                       precision=precision, **kw)


def _run(tmp_path, name, precision):
    out = train(_cfg(tmp_path / name, precision)).out
    return load_file(str(out / "model.safetensors")), json.loads((out / "config.json").read_text()), out


@pytest.fixture
def product_dtypes(monkeypatch):
    """The output dtype of every F.linear / F.conv2d call, split by whether autograd records it
    (a training step) or not (validation)."""
    seen = {"train": set(), "eval": set()}

    def spy(fn):
        def wrapped(*a, **k):
            out = fn(*a, **k)
            seen["train" if torch.is_grad_enabled() else "eval"].add(out.dtype)
            return out
        return wrapped

    monkeypatch.setattr(torch.nn.functional, "linear", spy(torch.nn.functional.linear))
    monkeypatch.setattr(torch.nn.functional, "conv2d", spy(torch.nn.functional.conv2d))
    return seen


def test_auto_on_a_bf16_cpu_trains_in_bf16_and_validates_in_fp32(tmp_path, monkeypatch, product_dtypes):
    monkeypatch.setattr(P, "cpu_has_bf16", lambda cpuinfo=None: True)
    out = train(_cfg(tmp_path / "auto", "auto")).out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["precision"] == "auto" and cfg["training"]["precision_used"] == "bf16"
    assert "precision: bf16 autocast (the CPU has bf16 instructions" in (out / "train.log").read_text()
    assert product_dtypes == {"train": {torch.bfloat16}, "eval": {torch.float32}}


def test_the_segmenter_trains_in_the_precision_it_records(tmp_path, product_dtypes):
    from xaiseg.data.phantom_writer import write_phantom
    from xaiseg.segmenters import SegmentationConfig, train_segmenter

    data = write_phantom(tmp_path / "ph", subjects=4, slices_per_subject=4, size=32, prevalence=1.0, seed=0,
                         progress=False)
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        product_dtypes["train"].clear()
        product_dtypes["eval"].clear()
        out = tmp_path / precision
        train_segmenter(SegmentationConfig(out=str(out), data=str(data), model="unet", image_size=32, epochs=1,
                                           batch_size=4, val_fraction=0.25, device="cpu", progress=False,
                                           precision=precision,
                                           model_kwargs={"channels": (4, 8), "strides": (2,), "num_res_units": 0}))
        assert product_dtypes == {"train": {dtype}, "eval": {torch.float32}}, precision
        assert json.loads((out / "config.json").read_text())["training"]["precision_used"] == precision


def _as_written_before_precision(resume_pt):
    """resume.pt as an xaiseg before --precision wrote it: an ``amp`` option, no precision."""
    state = torch.load(resume_pt, weights_only=True)
    fp = json.loads(state["fingerprint"])
    fp.pop("precision")
    fp["amp"] = True
    state["fingerprint"] = json.dumps(fp)
    state.pop("precision_used")
    torch.save(state, resume_pt)


def test_resume_continues_in_the_interrupted_runs_precision(tmp_path, monkeypatch):
    out = train(_cfg(tmp_path / "run", "fp32")).out
    with pytest.raises(ConfigError, match="computed in fp32, this one would in bf16; add --precision fp32"):
        train(_cfg(out, "bf16", resume=True))
    _as_written_before_precision(out / "resume.pt")  # a CPU run of the old amp flag: fp32
    assert train(_cfg(out, "auto", resume=True)).out == out  # auto is fp32 on this (pinned) CPU
    monkeypatch.setattr(P, "cpu_has_bf16", lambda cpuinfo=None: True)
    with pytest.raises(ConfigError, match="add --precision fp32"):
        train(_cfg(out, "auto", resume=True))
    assert train(_cfg(out, "fp32", resume=True)).out == out


def test_a_run_computes_in_the_precision_it_records(tmp_path):
    w32, c32, o32 = _run(tmp_path, "a", "fp32")
    w32b, _, _ = _run(tmp_path, "b", "fp32")
    w16, c16, o16 = _run(tmp_path, "c", "bf16")
    assert c32["training"]["precision_used"] == "fp32" and c16["training"]["precision_used"] == "bf16"
    assert "precision: fp32" in (o32 / "train.log").read_text()
    assert "precision: bf16" in (o16 / "train.log").read_text()
    # fp32 twice: the same weights (the loop is deterministic), so a difference is the arithmetic
    assert all(torch.equal(w32[k], w32b[k]) for k in w32)
    assert any(not torch.equal(w32[k], w16[k]) for k in w32)
    assert all(v.dtype == torch.float32 for v in w16.values())  # autocast never lowers the saved weights


def test_cli_refuses_fp16_on_cpu(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--out", str(out), "--device", "cpu", "--precision", "fp16"])
    assert r.exit_code != 0 and "fp16 needs a CUDA device" in r.output
    assert not out.exists()
