"""The training loop behind ``xaiseg train --task segmentation``.

:func:`train_segmenter` trains one MONAI segmenter on the masks of a data set on disk, or with
``folds`` >= 2 one per subject-wise fold (see :mod:`.checkpoint` for the layouts). Each model
directory gets what a classifier run gets: ``model.safetensors`` + ``config.json`` (the epoch
with the lowest validation loss), ``train_log.jsonl`` and ``resume.pt``; ``train.log`` (the
human-readable log) is one per run. A fold model's validation subjects are split off its own
training folds, so its held-out fold plays no part in training it; its held-out Dice (threshold
0.5, model grid) is computed once, after training, and stored in its config.json.

The pieces are the classifier trainer's: its optimiser (AdamW + no-decay groups), warm-up +
cosine schedule, subject split, epoch order, log, checkpoint writer and resume fingerprint.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..output.atomic import save_torch, write_json
from ..errors import CheckpointError, ConfigError, DataError, XaisegError
from ..output.paths import check_out_dir
from ..training.checkpoint import (CONFIG_FILE, SEGMENTER_KIND, WEIGHTS_FILE, jsonable, normalize, read_weights,
                                   resolve_device, save_checkpoint)
from ..training.curriculum import lr_factor
from ..training.precision import (RESUME_PRECISION_KEYS, autocast_factory, check_resume_precision, describe,
                                  resolve_precision)
from ..training.sources import epoch_order, open_training_data, subject_split
from ..training.run_files import LOG_FILE, RESUME_FILE, TEXT_LOG, RunLog, check_same_options, run_fingerprint
from ..training.trainer import build_optimizer
from .checkpoint import fold_dir, write_fold_index
from .config import SegmentationConfig
from .evaluate import evaluate
from .folds import plan_folds
from .lesion import segmentation_loss
from .presets import build_segmenter, default_segmenter_name, resolve_segmenter


@dataclass
class SegmenterResult:
    """What :func:`train_segmenter` returns: per model directory, its final metrics."""

    out: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass
class _Setup:
    """Everything the folds share: the network recipe, the input pipeline and the slices."""

    cfg: SegmentationConfig
    device: torch.device
    log: Any
    arch_config: dict[str, Any]
    images: torch.Tensor  # (N, C, S, S) float16
    masks: torch.Tensor  # (N, S, S) uint8
    subjects: np.ndarray  # (N,) str
    data_info: dict[str, Any]

    @cached_property
    def positive(self) -> set[str]:
        """Subjects with at least one hemorrhage pixel."""
        return {str(s) for s in self.subjects[(self.masks.flatten(1) > 0).any(1).numpy()]}

    def build(self) -> nn.Module:
        a = self.arch_config
        return build_segmenter(a["architecture"], a["model_kwargs"], a["in_chans"], a["out_channels"], a["input_size"])

    @cached_property
    def precision(self) -> str:
        """fp32, bf16 or fp16: ``--precision`` on this device (the classifier's rule)."""
        return resolve_precision(self.cfg.precision, self.device)

    @cached_property
    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")

    def amp_ctx(self):
        return autocast_factory(self.precision, self.device)()


def train_segmenter(cfg: SegmentationConfig, *, on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> SegmenterResult:
    """Train (or resume) a segmenter as configured; see the module docstring. ``on_epoch_end``
    gets each epoch's log record once it is on disk (tests use it to interrupt a run)."""
    cfg.validate()
    out = check_out_dir(cfg.out)
    fresh = not out.exists()
    try:
        return _run(cfg, out, on_epoch_end)
    except XaisegError:
        # an error found while setting up leaves nothing behind unless an epoch finished
        if not cfg.resume and not any(out.glob(f"**/{RESUME_FILE}")):
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
            else:
                (out / TEXT_LOG).unlink(missing_ok=True)
        raise


def _run(cfg: SegmentationConfig, out: Path, on_epoch_end) -> SegmenterResult:
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = any((out / n).exists() for n in (RESUME_FILE, WEIGHTS_FILE, LOG_FILE, CONFIG_FILE))
    if cfg.resume and not started:
        raise ConfigError(f"--resume: {str(out)!r} holds no segmenter run to resume")
    if not cfg.resume and started:
        raise ConfigError(f"{str(out)!r} already holds a training run; use --resume to continue it or another --out")
    if cfg.resume and ("folds" in _read_json(out / CONFIG_FILE)) != bool(cfg.folds):
        raise ConfigError("--resume with different options than the interrupted run: folds")
    out.mkdir(parents=True, exist_ok=True)
    setup = _setup(cfg, device, RunLog(out, cfg.progress))
    if cfg.folds:
        held = plan_folds(setup.subjects.tolist(), setup.positive, cfg.folds, cfg.seed)
        if cfg.resume:
            stored = [sorted(map(str, f["held_out"])) for f in _read_json(out / CONFIG_FILE)["folds"]]
            if stored != held:
                raise DataError(f"the subjects of {cfg.data!r} no longer give the folds of the run in {str(out)!r}; "
                                "resume with the same data, or start again in another --out")
        else:
            write_fold_index(out, setup.arch_config["architecture"], held,
                             {"data": setup.data_info, "training": {**cfg.to_dict(), "precision_used": setup.precision}})
        runs = [(fold_dir(out, k), k, held[k]) for k in range(cfg.folds)]
        setup.log(f"folds: {cfg.folds} subject-wise folds of {len(set(setup.subjects))} subjects "
                  f"({', '.join(str(len(h)) for h in held)} held out per fold); one model per fold in {out}/fold-*")
    else:
        runs = [(out, None, [])]
    setup.log.release()
    result = SegmenterResult(out=out)
    for run_dir, fold, held_out in runs:
        result.models[str(run_dir)] = _train_one(setup, run_dir, fold, held_out, on_epoch_end)
    if cfg.folds:
        _summarise_folds(out, result, setup.log)
    result.wall_s = time.perf_counter() - t0
    return result


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{str(path)!r} is not valid JSON; start the run again in another --out") from None


def _setup(cfg: SegmentationConfig, device: torch.device, log) -> _Setup:
    from ..data.constants import DEFAULT_WINDOWS
    from ..data.preprocess import Preprocessor
    from .data import load_mask_slices

    name = cfg.model or default_segmenter_name(device.type)
    preset, kwargs = resolve_segmenter(name, cfg.model_kwargs)
    out_channels = int(kwargs.pop("out_channels", 1))
    input_size = int(cfg.image_size or preset.input_size)
    resize = cfg.resize or (round(input_size * preset.resize_ratio) if preset.resize_ratio else None)
    windows = tuple(tuple(float(v) for v in w) for w in (cfg.windows or DEFAULT_WINDOWS))
    arch = {"architecture": preset.architecture, "preset": name, "model_kwargs": kwargs, "in_chans": len(windows),
            "out_channels": out_channels, "input_size": input_size, "resize": resize,
            "windows": [list(w) for w in windows],
            # the classifier's centring of the [0, 1] windows, so both read the same numbers
            "normalization": {"mean": [0.5] * len(windows), "std": [0.5] * len(windows)}}
    n_params = sum(p.numel() for p in build_segmenter(preset.architecture, kwargs, len(windows), out_channels, input_size).parameters())
    how = "" if cfg.model else f" (default on {device.type}; pass --model to choose)"
    log(f"segmenter: {name}{how} -> MONAI {preset.architecture} {kwargs}, {out_channels} output channel(s), "
        f"{n_params / 1e6:.2f} M parameters, input {input_size} px" + (f", resize {resize}" if resize else ""))
    log(f"device: {device}, torch threads: {torch.get_num_threads()}, precision: "
        f"{describe(cfg.precision, device)}, "
        "loss: Dice + cross-entropy (MONAI DiceCELoss)")

    ds = open_training_data(cfg.data, cfg.layout, skip_bad=cfg.skip_bad)
    if not getattr(ds, "has_masks", True):
        raise DataError(f"{cfg.data!r} ({ds.layout}) has no hemorrhage masks; --task segmentation needs a data set with masks")
    if getattr(ds, "skipped", None):
        from ..data.base import skipped_summary

        log(skipped_summary(ds.skipped))
    n = min(len(ds.records), cfg.limit) if cfg.limit else len(ds.records)
    if n == 0:
        raise DataError(f"{cfg.data!r} holds no slices")
    pre = Preprocessor(input_size, windows, resize=resize)
    images, masks = load_mask_slices(ds, range(n), pre, progress=cfg.progress)
    subjects = np.array([str(r.subject) for r in ds.records[:n]])
    n_pos = int(masks.flatten(1).any(1).sum())
    log(f"data: {ds.layout} {cfg.data}: {n} slices ({n_pos} with hemorrhage) of {len(set(subjects))} subjects, "
        f"held in memory ({images.numel() * 2 / 2**20:.0f} MiB)")
    info = {"source": cfg.data, "layout": ds.layout, "slices": n, "positive_slices": n_pos, "subjects": len(set(subjects))}
    return _Setup(cfg, device, log, arch, images, masks, subjects, info)


def _split(setup: _Setup, held_out: list[str]) -> dict[str, list[str]]:
    """The subjects of one model: ``held_out`` (its fold), and of the rest ``train`` / ``val``.

    Subjects with and without hemorrhage are split separately (each by the classifier's
    ``subject_split``): a validation split without a lesion has no Dice and would choose the
    best epoch by how little it predicts.
    """
    rest = sorted(set(setup.subjects.tolist()) - set(held_out))
    if not rest:
        raise DataError("no subject is left to train on")
    train, val = set(), set()
    for group in ([s for s in rest if s in setup.positive], [s for s in rest if s not in setup.positive]):
        t, v = subject_split(group, setup.cfg.val_fraction, setup.cfg.seed) if len(group) >= 2 else (set(group), set())
        train, val = train | t, val | v
    return {"train": sorted(train), "val": sorted(val), "held_out": sorted(held_out)}


def _rows(setup: _Setup, subjects: list[str]) -> torch.Tensor:
    return torch.from_numpy(np.flatnonzero(np.isin(setup.subjects, subjects)))


def _train_one(setup: _Setup, run_dir: Path, fold: int | None, held_out: list[str], on_epoch_end) -> dict[str, Any]:
    cfg, log = setup.cfg, setup.log
    split = _split(setup, held_out)
    rows = {k: _rows(setup, v) for k, v in split.items()}
    tag = "" if fold is None else f"fold {fold}: "
    log(f"{tag}{len(rows['train'])} training slices of {len(split['train'])} subjects, {len(rows['val'])} validation "
        f"slices of {len(split['val'])}" + ("" if fold is None else f", {len(rows['held_out'])} held out of {len(held_out)}"))
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = setup.build().to(setup.device)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    loss_fn = segmentation_loss(setup.arch_config["out_channels"])
    setup.__dict__.pop("scaler", None)  # every fold's model starts with a fresh loss scale
    state = _resume(setup, run_dir, model, optimizer)
    steps_per_epoch = -(-len(rows["train"]) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, round(0.05 * total))
    config = {**setup.arch_config, "kind": SEGMENTER_KIND, "fold": fold, "subjects": split, "data": setup.data_info,
              "training": {**cfg.to_dict(), "precision_used": setup.precision}, "versions": {"xaiseg": __version__, "torch": torch.__version__}}
    from ..data.augment import Augment

    augment = Augment() if cfg.augment else None
    for epoch in range(state["epoch"], cfg.epochs if not state["stopped_early"] else state["epoch"]):
        t_epoch = time.perf_counter()
        losses = _epoch(setup, model, optimizer, loss_fn, augment, rows["train"], epoch, state, total, warmup,
                        desc=f"{tag}epoch {epoch + 1}/{cfg.epochs}")
        rec: dict[str, Any] = {"epoch": epoch + 1, "step": state["step"], "lr": state["lr"], "train_loss": float(np.mean(losses))}
        if len(rows["val"]):
            vm = evaluate(model, setup.images[rows["val"]], setup.masks[rows["val"]], loss_fn=loss_fn,
                          normalization=config["normalization"], device=setup.device)  # in fp32, as the benchmark reads it
            rec.update({f"val_{k}": v for k, v in vm.items()})
        rec["epoch_s"] = time.perf_counter() - t_epoch
        _end_epoch(setup, run_dir, model, optimizer, config, rec, state)
        log(_epoch_line(tag, rec, cfg.epochs))
        if on_epoch_end is not None:
            on_epoch_end(rec)
        if state["stopped_early"]:
            log(f"{tag}early stopping: no lower validation loss for {cfg.patience} epochs")
            break
    return _finish(setup, run_dir, rows["held_out"], loss_fn, state, tag)


def _epoch(setup: _Setup, model, optimizer, loss_fn, augment, train_rows, epoch, state, total, warmup, desc) -> list[float]:
    """One pass over the training slices in the epoch's order; batches (and their augmentation
    draws, seeded by (seed, step)) depend only on the epoch, so a resumed run repeats them."""
    from ..progress import progress_bar

    cfg = setup.cfg
    order = train_rows[torch.from_numpy(epoch_order(len(train_rows), epoch, cfg.seed))]
    losses: list[float] = []
    norm = setup.arch_config["normalization"]
    for b in progress_bar(range(0, len(order), cfg.batch_size), desc=desc, enabled=cfg.progress, leave=False):
        idx = order[b : b + cfg.batch_size]
        x, y = setup.images[idx].float(), setup.masks[idx].float()
        if augment is not None:
            x, y = augment(x, y, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + state["step"]))
        state["lr"] = cfg.lr * lr_factor(state["step"], total, warmup, cfg.min_lr_ratio)
        for g in optimizer.param_groups:
            g["lr"] = state["lr"]
        x, y = normalize(x.to(setup.device), norm), y.to(setup.device)[:, None]
        with setup.amp_ctx():
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        setup.scaler.scale(loss).backward()
        if cfg.grad_clip:
            setup.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        setup.scaler.step(optimizer)
        setup.scaler.update()
        losses.append(float(loss.detach()))
        state["step"] += 1
    if not losses:
        raise ConfigError("an epoch had no training batches (empty training split?)")
    return losses


def _end_epoch(setup: _Setup, run_dir: Path, model, optimizer, config, rec, state) -> None:
    """Best checkpoint, early stopping, the epoch's log line and resume.pt."""
    cfg = setup.cfg
    rec["elapsed_s"] = state["elapsed_s"] = state["elapsed_s"] + rec["epoch_s"]
    val_loss = rec.get("val_loss", rec["train_loss"])
    rec["best"] = improved = val_loss < state["best_val"]
    if improved:
        state.update(best_val=val_loss, best_epoch=rec["epoch"], bad_epochs=0, best_metrics=dict(rec))
        save_checkpoint(run_dir, model, {**config, "metrics": state["best_metrics"]})
    else:
        state["bad_epochs"] += 1
    if cfg.patience and state["bad_epochs"] >= cfg.patience and "val_loss" in rec:
        rec["stopped_early"] = state["stopped_early"] = True
    state["epoch"] = rec["epoch"]
    state["history"].append(rec)
    with open(run_dir / LOG_FILE, "a") as f:
        f.write(json.dumps(jsonable(rec)) + "\n")
    loop = {k: state[k] for k in ("epoch", "step", "lr", "best_val", "best_epoch", "bad_epochs", "elapsed_s",
                                  "stopped_early", "best_metrics", "history")}
    save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": setup.scaler.state_dict() if setup.scaler.is_enabled() else None,
                "precision_used": setup.precision,
                "fingerprint": json.dumps(run_fingerprint(cfg)), "loop": json.dumps(jsonable(loop))},
               run_dir / RESUME_FILE)


def _resume(setup: _Setup, run_dir: Path, model, optimizer) -> dict[str, Any]:
    """The loop state: fresh, or read back from ``run_dir/resume.pt`` with ``--resume``."""
    state: dict[str, Any] = {"epoch": 0, "step": 0, "lr": 0.0, "best_val": math.inf, "best_epoch": -1, "bad_epochs": 0,
                             "elapsed_s": 0.0, "stopped_early": False, "best_metrics": {}, "history": []}
    path = run_dir / RESUME_FILE
    if not (setup.cfg.resume and path.is_file()):
        return state  # a fold that had not started when the run stopped starts now
    def unreadable(exc: Exception) -> CheckpointError:
        return CheckpointError(f"cannot read {str(path)!r}: corrupt or not written by xaiseg train --task segmentation "
                               f"({type(exc).__name__}); start the run again in another --out")

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        fingerprint, loop = json.loads(saved["fingerprint"]), json.loads(saved["loop"])
    except Exception as exc:
        raise unreadable(exc) from None
    # the options first: other model kwargs would otherwise read as a corrupt file
    check_resume_precision(fingerprint, saved.get("precision_used"), setup.cfg.precision, setup.device)
    check_same_options(fingerprint, run_fingerprint(setup.cfg), RESUME_PRECISION_KEYS)
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if saved.get("scaler"):
            setup.scaler.load_state_dict(saved["scaler"])
    except Exception as exc:
        raise unreadable(exc) from None
    state.update(loop)
    state["best_val"] = math.inf if state["best_val"] is None else float(state["best_val"])
    setup.log(f"resumed {path} after epoch {state['epoch']} (step {state['step']})")
    return state


def _finish(setup: _Setup, run_dir: Path, held_rows: torch.Tensor, loss_fn, state, tag: str) -> dict[str, Any]:
    """Final metrics into config.json; a fold model is scored once on its held-out fold."""
    if state["best_epoch"] < 0:
        raise ConfigError("no epoch was trained (check --epochs)")
    cfg_path = run_dir / CONFIG_FILE
    final = json.loads(cfg_path.read_text())
    metrics = {**state["best_metrics"], "best_epoch": state["best_epoch"], "epochs_run": len(state["history"]),
               "wall_s": state["elapsed_s"]}
    if len(held_rows):
        best = setup.build().to(setup.device)
        best.load_state_dict(read_weights(run_dir / WEIGHTS_FILE))
        hm = evaluate(best, setup.images[held_rows], setup.masks[held_rows], loss_fn=loss_fn,
                      normalization=final["normalization"], device=setup.device)  # in fp32, as the benchmark reads it
        metrics.update({f"held_out_{k}": v for k, v in hm.items()})
    final["metrics"] = metrics
    write_json(cfg_path, jsonable(final))
    setup.log(f"{tag}done: best epoch {state['best_epoch']}, val Dice {_fmt(metrics.get('val_dice'))}"
              + (f", held-out Dice {_fmt(metrics['held_out_dice'])}" if "held_out_dice" in metrics else "")
              + f" ({state['elapsed_s']:.0f} s); checkpoint: {run_dir}")
    return metrics


def _summarise_folds(out: Path, result: SegmenterResult, log) -> None:
    index = json.loads((out / CONFIG_FILE).read_text())
    per_fold = [m.get("held_out_dice") for m in result.models.values()]
    scores = [v for v in per_fold if isinstance(v, float) and math.isfinite(v)]
    index["metrics"] = {"held_out_dice_per_fold": per_fold,
                        "held_out_dice_mean": float(np.mean(scores)) if scores else None,
                        "wall_s": float(sum(m.get("wall_s", 0.0) for m in result.models.values()))}
    write_json(out / CONFIG_FILE, jsonable(index))
    log(f"all {len(per_fold)} folds done: held-out Dice per fold {', '.join(_fmt(v) for v in per_fold)}, "
        f"mean {_fmt(index['metrics']['held_out_dice_mean'])}; segmenter: {out}")


def _fmt(v: Any) -> str:
    return "n/a" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.4f}"


def _epoch_line(tag: str, rec: dict[str, Any], epochs: int) -> str:
    s = f"{tag}epoch {rec['epoch']}/{epochs} step {rec['step']}: train loss {_fmt(rec['train_loss'])}"
    if "val_loss" in rec:
        s += f", val loss {_fmt(rec['val_loss'])}, Dice {_fmt(rec['val_dice'])} (pooled {_fmt(rec['val_dice_pooled'])})"
    return s + f" ({rec['epoch_s']:.0f} s)" + (" *" if rec.get("best") else "")
