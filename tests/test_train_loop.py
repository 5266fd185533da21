"""End to end: train a tiny Swin on a tiny generated PhysioNet-layout set, save, reload, resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import xaiseg
from xaiseg.data.constants import LABELS
from xaiseg.errors import ConfigError
from xaiseg.training import TrainConfig, train
from xaiseg.training.run_files import LOG_FILE, RESUME_FILE

TINY = {"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from xaiseg.data.phantom_writer import write_phantom

    out = tmp_path_factory.mktemp("data") / "ph"
    # 4 subjects x 5 slices at 32 px; prevalence 0.5 -> 2 subjects with hemorrhage
    return write_phantom(out, subjects=4, slices_per_subject=5, size=32, prevalence=0.5, seed=0, progress=False)


def _cfg(out, data, **kw) -> TrainConfig:
    base = dict(out=str(out), data=str(data), layout="physionet", model="tiny", model_kwargs=dict(TINY), epochs=1,
                batch_size=4, lr=1e-3, val_fraction=0.25, seed=0, device="cpu", progress=False, patience=0, workers=0,
                train_on="disk")  # a data set on disk (a written phantom would default to the stream)
    base.update(kw)
    return TrainConfig(**base)


def _independent_load(path):
    """Rebuild from config.json + safetensors with timm and safetensors directly (not our loader)."""
    import timm
    from safetensors.torch import load_file

    cfg = json.loads((path / "config.json").read_text())
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["model_kwargs"].items()}
    m = timm.create_model(cfg["timm_name"], pretrained=False, num_classes=cfg["num_classes"], **kw)
    m.load_state_dict(load_file(str(path / "model.safetensors")))
    return m.eval(), cfg


@pytest.mark.parametrize("task", ["binary", "subtypes"])
def test_train_save_reload(tiny_set, tmp_path, task):
    # binary also checks --resize (shorter side to 40 px, centre crop 32), recorded and reused
    resize = 40 if task == "binary" else None
    res = train(_cfg(tmp_path / task, tiny_set, task=task, focal_gamma=2.0 if task == "subtypes" else 0.0, resize=resize))
    out = res.out
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", LOG_FILE, RESUME_FILE}
    loaded = xaiseg.load_model(out, device="cpu")
    cfg = loaded.config
    assert cfg["task"] == task and cfg["input_size"] == 32 and cfg["windows"] == [[40, 120], [80, 200], [600, 2800]]
    if task == "binary":
        assert cfg["num_classes"] == 2 and cfg["target_index"] == 1 and len(cfg["class_names"]) == 2
    else:
        assert cfg["num_classes"] == 6 and cfg["class_names"] == list(LABELS) and cfg["target_index"] == LABELS.index("any")
    assert cfg["metrics"]["best_epoch"] == 1 and "val_auc" in cfg["metrics"] and cfg["xaiseg_version"] == xaiseg.__version__
    assert cfg["data"]["val_subjects"] and not set(cfg["data"]["val_subjects"]) & set(cfg["data"]["train_subjects"])
    assert not loaded.model.training
    assert cfg["resize"] == resize
    geo = loaded.preprocessor.geometry((64, 64))
    assert (geo.resized, geo.top) == (((40, 40), 4) if resize else ((32, 32), 0))

    # same logits: the in-memory model, our loader, and an independent timm + safetensors rebuild
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        ref = res.model(x)
        got = loaded.model(x)
        indep, _ = _independent_load(out)
        other = indep(x)
    assert ref.shape == (3, cfg["num_classes"])
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(other, ref, atol=1e-6, rtol=0)

    # the loader's preprocessing is the training one: HU slice -> windows in [0, 1]
    hu = np.full((64, 64), 40.0, np.float32)
    image, _ = loaded.prepare(hu)
    assert image.shape == (1, 3, 32, 32)
    windows = torch.tensor([0.5, (40 - 80 + 100) / 200, (40 - 600 + 1400) / 2800])  # clip((hu - lo) / width)
    mean, std = (torch.tensor(cfg["normalization"][k]) for k in ("mean", "std"))
    torch.testing.assert_close(image[0, :, 5, 5], (windows - mean) / std)

    log = [json.loads(l) for l in (out / LOG_FILE).read_text().splitlines()]
    assert len(log) == 1 and {"train_loss", "val_loss", "val_auc", "val_accuracy", "val_sensitivity", "val_specificity"} <= set(log[0])
    if task == "subtypes":
        assert set(log[0]["val_auc_per_label"]) == set(LABELS)


def test_the_paper_preset_resizes_to_422_and_crops_384():
    from xaiseg.training.presets import default_resize

    assert default_resize("paper", 384) == 422  # docs/design.md §1: resize 422, centre-crop 384
    assert default_resize("tiny", 128) is None and default_resize("swin_base_patch4_window12_384", 384) is None
    with pytest.raises(ConfigError, match="--seed must be >= 0"):
        _cfg("x", "phantom", seed=-1).validate()


def test_one_channel_per_window_and_no_decay_on_position_tables(tiny_set, tmp_path):
    # --windows with one window: a 1-channel model, saved, reloaded and fed by its preprocessor
    res = train(_cfg(tmp_path / "w1", tiny_set, windows=((40.0, 120.0),)))
    loaded = xaiseg.load_model(res.out, device="cpu")
    assert loaded.config["in_chans"] == 1 and loaded.model.patch_embed.proj.in_channels == 1
    image, _ = loaded.prepare(np.full((32, 32), 40.0, np.float32))
    assert image.shape == (1, 1, 32, 32)
    with torch.no_grad():
        assert loaded.model(image).shape == (1, 2)

    from xaiseg.training.trainer import build_optimizer

    model = loaded.model
    opt = build_optimizer(model, 1e-3, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    free = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    tables = {n for n in names.values() if n.endswith("relative_position_bias_table")}
    assert tables and tables <= free  # timm's Swin.no_weight_decay(); were decayed with timm 1.0.31
    assert all(n.endswith(".weight") and model.get_parameter(n).ndim > 1 for n in decayed)
    assert not {n for n in names.values() if n.endswith(".bias") or ".norm" in n} & decayed


class _Stop(Exception):
    """Simulates a crash at the end of an epoch."""


def _stop_after(epoch):
    def hook(rec):
        if rec["epoch"] == epoch:
            raise _Stop

    return hook


def _resume_state(out):
    return torch.load(out / RESUME_FILE, weights_only=True)


def _forget_in_fingerprint(out, key, **recorded):
    """resume.pt as an xaiseg that did not record ``key`` (and recorded ``recorded``) would have written it."""
    state = _resume_state(out)
    fp = json.loads(state["fingerprint"])
    del fp[key]
    fp.update(recorded)
    state["fingerprint"] = json.dumps(fp)
    torch.save(state, out / RESUME_FILE)


def test_resume_refuses_another_network_when_the_default_model_changed(tiny_set, tmp_path, monkeypatch):
    # The default depends on the device (a resumed run may change it) and on the xaiseg version:
    # a resumed run must rebuild the network that trained, not whatever the default is now.
    import xaiseg.training.trainer as trainer
    from xaiseg.errors import CheckpointError

    kw = dict(model=None, epochs=2, model_kwargs={k: v for k, v in TINY.items() if k != "depths"})
    with pytest.raises(_Stop):
        train(_cfg(tmp_path / "cut", tiny_set, **kw), on_epoch_end=_stop_after(1))
    monkeypatch.setattr(trainer, "default_model_name", lambda device, phantom=False: "small")  # depths 2-2-4-2
    with pytest.raises(ConfigError, match=r"different options than the interrupted run: built "
                                          r"swin_tiny_patch4_window7_224 .*\"depths\": \[2, 2, 2, 2\].* in the run"):
        train(_cfg(tmp_path / "cut", tiny_set, **kw, resume=True))
    # the run's network named explicitly resumes it, also once its preset changed in a later xaiseg
    # (then by its timm name and kwargs, as config.json and the error give them)
    state = _resume_state(tmp_path / "cut")
    timm_name, kwargs = json.loads(state["fingerprint"])["built"]
    torch.save(state, tmp_path / "copy.pt")
    assert train(_cfg(tmp_path / "cut", tiny_set, **{**kw, "model": "tiny"}, resume=True)).best_epoch >= 1
    torch.save(torch.load(tmp_path / "copy.pt", weights_only=True), tmp_path / "cut" / RESUME_FILE)
    from xaiseg.training import presets

    monkeypatch.setitem(presets.PRESETS, "tiny", presets.Preset("tiny", timm_name, {**presets.PRESETS["tiny"].kwargs,
                                                                                    "drop_path_rate": 0.1}))
    with pytest.raises(ConfigError, match="drop_path_rate"):
        train(_cfg(tmp_path / "cut", tiny_set, **{**kw, "model": "tiny"}, resume=True))
    assert train(_cfg(tmp_path / "cut", tiny_set, **{**kw, "model": timm_name, "model_kwargs": kwargs},
                      resume=True)).best_epoch >= 1
    torch.save(torch.load(tmp_path / "copy.pt", weights_only=True), tmp_path / "cut" / RESUME_FILE)
    # a resume.pt of an older xaiseg records --model as given (None) and no network: weights that do
    # not fit are refused in one line, and the --model it names resumes the run
    _forget_in_fingerprint(tmp_path / "cut", "built", model=None)
    monkeypatch.setattr(trainer, "default_model_name", lambda device, phantom=False: "small")
    with pytest.raises(CheckpointError, match="holds the weights of another network: pass the --model"):
        train(_cfg(tmp_path / "cut", tiny_set, **kw, resume=True))
    resumed = train(_cfg(tmp_path / "cut", tiny_set, **{**kw, "model": "tiny"}, resume=True))
    assert resumed.best_epoch >= 1 and _resume_state(tmp_path / "cut")["epoch"] == 2


def test_resume_equals_uninterrupted(tiny_set, tmp_path):
    kw = dict(epochs=2, balanced=True)
    full = train(_cfg(tmp_path / "full", tiny_set, **kw))

    with pytest.raises(_Stop):
        train(_cfg(tmp_path / "cut", tiny_set, **kw), on_epoch_end=_stop_after(1))
    with pytest.raises(ConfigError, match="already holds"):
        train(_cfg(tmp_path / "cut", tiny_set, **kw))
    with pytest.raises(ConfigError, match="different options"):
        train(_cfg(tmp_path / "cut", tiny_set, **{**kw, "lr": 5e-4}, resume=True))
    # A run saved before an option existed resumes with that option at its default (and only then).
    _forget_in_fingerprint(tmp_path / "cut", "skip_bad")
    with pytest.raises(ConfigError, match="different options.*skip_bad"):
        train(_cfg(tmp_path / "cut", tiny_set, **kw, skip_bad=True, resume=True))
    # the folder may be spelled differently (trailing slash, absolute path): it is where resume.pt is
    resumed = train(_cfg(str((tmp_path / "cut").resolve()) + "/", tiny_set, **kw, resume=True))

    a, b = _resume_state(full.out), _resume_state(resumed.out)
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"] > 0
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert float(sa[i]["step"]) == float(sb[i]["step"])
        assert torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) and torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"])
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    la = [json.loads(l) for l in (full.out / LOG_FILE).read_text().splitlines()]
    lb = [json.loads(l) for l in (resumed.out / LOG_FILE).read_text().splitlines()]
    timing = ("epoch_s", "steps_per_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in la] == [{k: v for k, v in r.items() if k not in timing} for r in lb]
    assert full.best_epoch == resumed.best_epoch
    ma, mb = (xaiseg.load_model(r.out, device="cpu").model.state_dict() for r in (full, resumed))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_phantom_stream_run_and_determinism(tmp_path):
    from xaiseg.data.preprocess import Preprocessor
    from xaiseg.training.curriculum import Curriculum
    from xaiseg.training.sources import PhantomStream

    res = train(_cfg(tmp_path / "ph", "phantom", layout="auto", epochs=2, steps_per_epoch=2, val_size=8,
                     curriculum_start=3.0, curriculum_hold=0.25, curriculum_shrink=0.5))
    log = [json.loads(l) for l in (res.out / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert log[0]["lesion_scale_start"] == 3.0 and log[1]["lesion_scale_end"] == 1.0
    assert xaiseg.load_model(res.out, device="cpu").config["data"]["source"] == "phantom-stream"

    kw = dict(seed=3, total_steps=10, batch_size=2, preprocessor=Preprocessor(32), render_size=32, prevalence=0.5,
              curriculum=Curriculum(2.0, 0.5, 0.0))
    s1 = PhantomStream(start=0, stop=10, **kw)
    s2 = PhantomStream(start=4, stop=6, **kw)  # a resumed stream starts mid-run
    x4, y4 = s1.batch(4)
    xr, yr = next(iter(s2))
    assert torch.equal(x4, xr) and torch.equal(y4, yr)
    assert not torch.equal(s1.batch(5)[0], x4)


def test_ema_is_the_moving_average_of_the_trained_weights_and_resumes(tiny_set, tmp_path):
    """--ema: the saved/validated weights are e_1 = w_1, e_k = d e_(k-1) + (1 - d) w_k over the
    optimiser steps (computed here from the plain run's per-step weights), training itself is
    unchanged, and an interrupted EMA run resumes to the same average."""
    d = 0.7
    # one step per epoch (batch 16 > the 15 training slices) so resume.pt shows every step's weights
    kw = dict(epochs=3, batch_size=16, patience=0)
    steps: list[dict] = []
    plain = train(_cfg(tmp_path / "plain", tiny_set, **kw),
                  on_epoch_end=lambda rec: steps.append(_resume_state(tmp_path / "plain")["model"]))
    assert [json.loads(l)["step"] for l in (plain.out / LOG_FILE).read_text().splitlines()] == [1, 2, 3]
    averages = [{k: v.clone() for k, v in steps[0].items()}]
    for w in steps[1:]:
        averages.append({k: d * averages[-1][k] + (1 - d) * v if v.is_floating_point() else v for k, v in w.items()})
    expected = averages[-1]

    with pytest.raises(_Stop):
        train(_cfg(tmp_path / "ema", tiny_set, **kw, ema=d), on_epoch_end=_stop_after(2))
    resumed = train(_cfg(tmp_path / "ema", tiny_set, **kw, ema=d, resume=True))
    uninterrupted = train(_cfg(tmp_path / "ema-full", tiny_set, **kw, ema=d))
    for res in (resumed, uninterrupted):
        state = _resume_state(res.out)
        for k in steps[-1]:
            assert torch.equal(state["model"][k], steps[-1][k]), k  # the EMA does not change training
            torch.testing.assert_close(state["ema"][k], expected[k], rtol=1e-5, atol=1e-6, msg=k)
    # what is validated and saved is the average (at its best epoch)
    best = uninterrupted.best_epoch
    log = [json.loads(l) for l in (uninterrupted.out / LOG_FILE).read_text().splitlines()]
    assert log[best - 1]["best"]
    saved = xaiseg.load_model(uninterrupted.out, device="cpu").model.state_dict()
    for k in saved:
        torch.testing.assert_close(saved[k], averages[best - 1][k], rtol=1e-5, atol=1e-6, msg=k)
    plain_saved = xaiseg.load_model(plain.out, device="cpu").model.state_dict()
    assert any(not torch.equal(saved[k], plain_saved[k]) for k in saved)
    with pytest.raises(ConfigError, match="--ema"):
        train(_cfg(tmp_path / "bad", tiny_set, ema=1.0))
    with pytest.raises(ConfigError, match="--grad-clip"):
        train(_cfg(tmp_path / "bad", tiny_set, grad_clip=-1.0))


@pytest.mark.parametrize("select", ["val-auc", "val-loss", "last"])
def test_select_keeps_the_epoch_the_log_says(tmp_path_factory, select):
    """--select: the kept weights are those of the epoch with the highest val AUC / the lowest
    val loss (first on ties) / the last epoch, read here from train_log.jsonl; for `last` the
    weights equal resume.pt's model."""
    from safetensors.torch import load_file

    from xaiseg.data.phantom_writer import write_phantom

    data = write_phantom(tmp_path_factory.mktemp("sel") / "ph", subjects=6, slices_per_subject=6, size=32,
                         prevalence=0.5, seed=5, progress=False)
    out = tmp_path_factory.mktemp("run") / select
    res = train(_cfg(out, data, epochs=4, lr=1e-3, val_fraction=0.34, select=select))
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    aucs, losses = [r["val_auc"] for r in log], [r["val_loss"] for r in log]
    assert all(np.isfinite(aucs)) and len(set(aucs)) > 1  # the criterion has something to choose
    picks = {"val-auc": 1 + int(np.argmax(aucs)), "val-loss": 1 + int(np.argmin(losses)), "last": len(log)}
    assert len(set(picks.values())) == 3  # this run tells the three rules apart
    want = picks[select]
    cfg = json.loads((out / "config.json").read_text())
    assert res.best_epoch == want and cfg["metrics"]["epoch"] == want and cfg["metrics"]["best_epoch"] == want
    assert cfg["metrics"]["val_auc"] == pytest.approx(aucs[want - 1])
    if select == "last":
        kept = load_file(str(out / "model.safetensors"))
        last = torch.load(out / RESUME_FILE, map_location="cpu", weights_only=True)["model"]
        assert kept.keys() == last.keys() and all(torch.equal(kept[k], last[k]) for k in kept)


def test_loader_processes_do_not_change_the_run(tiny_set, tmp_path):
    """Disk training with two data-loader processes ends with the same weights as in the main
    process: the volume-buffered order and every flip are functions of (seed, epoch, draw)."""
    from safetensors.torch import load_file

    a = train(_cfg(tmp_path / "w0", tiny_set, workers=0, epochs=2))
    b = train(_cfg(tmp_path / "w2", tiny_set, workers=2, epochs=2))
    wa, wb = load_file(str(a.out / "model.safetensors")), load_file(str(b.out / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
