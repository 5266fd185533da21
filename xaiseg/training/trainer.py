"""The training loop behind ``xaiseg train``.

One function, :func:`train`, runs a whole (or resumed) run and writes into ``cfg.out``:

- ``model.safetensors`` + ``config.json``: the epoch with the lowest validation loss so far
  (a loadable checkpoint exists from the first epoch on; ``xaiseg.load_model`` reads it);
- ``train_log.jsonl``: one JSON object per epoch (train/val loss, val AUC, accuracy,
  sensitivity, specificity, learning rate, lesion scale, wall time, steps/s);
- ``train.log``: the human-readable log;
- ``resume.pt``: model, optimiser, AMP scaler, RNG and loop state at the end of the last epoch,
  read back with ``torch.load(weights_only=True)`` by ``--resume``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import CheckpointError, ConfigError, DataError, XaisegError
from ..outputs import check_out_dir
from .checkpoint import (CONFIG_FILE, WEIGHTS_FILE, _jsonable, detection_probability, init_from, normalize,
                         resolve_device, save_checkpoint)
from .config import TrainConfig
from .curriculum import Curriculum, lr_factor
from .evaluation import detection_metrics, per_label_auc
from .losses import task_loss
from .presets import PRESETS, build_model, default_model_name, default_resize, model_input_size, resolve_model

RESUME_FILE = "resume.pt"
LOG_FILE = "train_log.jsonl"
TEXT_LOG = "train.log"
# Options a resumed run may change: they do not change the numbers (``out`` is where resume.pt
# lives, however it is spelled: ./runs/a, runs/a/, an absolute path, a moved folder).
_RESUME_FREE = ("resume", "progress", "workers", "device", "threads", "command", "out")


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    out: Path
    best_epoch: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    wall_s: float = 0.0
    model: nn.Module | None = None  # the in-memory model after the last epoch (eval mode)


def task_classes(task: str) -> tuple[list[str], int]:
    """Class names and the explained target index of a task."""
    from ..data.constants import LABELS

    if task == "binary":
        return ["no_hemorrhage", "hemorrhage"], 1
    return list(LABELS), list(LABELS).index("any")


class _Log:
    """train.log and the terminal. Set-up lines are held back until :meth:`release` (called once
    model and data are ready), so options that fail during set-up print just their one-line error."""

    def __init__(self, out: Path, progress: bool) -> None:
        self.path, self.progress = out / TEXT_LOG, progress
        self._held: list[tuple[str, str]] | None = []

    def __call__(self, msg: str) -> None:
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n"
        if self._held is not None:
            self._held.append((line, msg))
        else:
            self._emit([(line, msg)])

    def release(self) -> None:
        held, self._held = self._held or [], None
        self._emit(held)

    def _emit(self, lines: list[tuple[str, str]]) -> None:
        from tqdm.auto import tqdm

        if not lines:
            return
        with open(self.path, "a") as f:
            f.writelines(line for line, _ in lines)
        for _, msg in lines:
            tqdm.write(msg)


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with no weight decay on norms, biases and the model's ``no_weight_decay()`` names
    (Swin: the relative-position bias tables), via timm's grouping."""
    from timm.optim import param_groups_weight_decay

    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    # by keyword: timm 1.0.x later put a bool (weight_decay_exclude_1d) third, where the list was
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_decay)
    return torch.optim.AdamW(groups, lr=lr)


def _fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    for k in _RESUME_FREE:
        d.pop(k, None)
    return _jsonable(d)


def _evaluate(model: nn.Module, batches, task: str, target_index: int, device: torch.device, amp_ctx,
              normalization: dict[str, Any]) -> dict[str, Any]:
    model.eval()
    losses, weights, probs, labels, all_probs = [], [], [], [], []
    with torch.no_grad():
        for x, y in batches:
            x, y = normalize(x.to(device, non_blocking=True), normalization), y.to(device)
            with amp_ctx():
                logits = model(x)
            losses.append(float(task_loss(logits, y, task)) * len(x))
            weights.append(len(x))
            probs.append(detection_probability(logits, task, target_index).cpu())
            labels.append(y.cpu())
            if task == "subtypes":
                all_probs.append(logits.float().sigmoid().cpu())
    model.train()
    y = torch.cat(labels).numpy()
    out: dict[str, Any] = {"loss": sum(losses) / max(1, sum(weights)), "n": int(sum(weights)), "positives": int((y[:, -1] > 0.5).sum())}
    out.update(detection_metrics(y[:, -1], torch.cat(probs).numpy()))
    if task == "subtypes":
        from ..data.constants import LABELS

        out["auc_per_label"] = per_label_auc(y, torch.cat(all_probs).numpy(), list(LABELS))
    return out


def _tensor_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(
    cfg: TrainConfig,
    *,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train (or resume) a slice-label classifier as configured; see the module docstring.

    ``on_epoch_end`` is called with each epoch's log record after everything of that epoch is
    on disk (tests use it to interrupt a run).
    """
    cfg.validate()
    out = check_out_dir(cfg.out)
    fresh = not out.exists()
    try:
        return _train(cfg, on_epoch_end)
    except XaisegError:
        # A bad model name, --init file or data set is found while setting up, after the log
        # was opened: leave nothing behind unless an epoch finished (then resume.pt matters).
        if not cfg.resume and not (out / RESUME_FILE).exists():
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
            else:
                (out / TEXT_LOG).unlink(missing_ok=True)
        raise


def _train(cfg: TrainConfig, on_epoch_end: Callable[[dict[str, Any]], None] | None) -> TrainResult:
    from ..data.constants import DEFAULT_WINDOWS
    from ..data.preprocess import Preprocessor

    t_start = time.perf_counter()  # cfg was validated by train()
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    resume_path = out / RESUME_FILE
    if cfg.resume and not resume_path.is_file():
        raise ConfigError(f"--resume: {str(resume_path)!r} does not exist (nothing to resume in {str(out)!r})")
    if not cfg.resume and out.exists() and any((out / n).exists() for n in (RESUME_FILE, WEIGHTS_FILE, LOG_FILE)):
        raise ConfigError(f"{str(out)!r} already holds a training run; use --resume to continue it or another --out")
    out.mkdir(parents=True, exist_ok=True)
    log = _Log(out, cfg.progress)

    # ---- model -------------------------------------------------------------------------------
    model_name = cfg.model or default_model_name(device.type)
    timm_name, kwargs = resolve_model(model_name, cfg.model_kwargs)
    if cfg.image_size:
        kwargs["img_size"] = int(cfg.image_size)
    class_names, target_index = task_classes(cfg.task)
    windows = tuple(tuple(float(v) for v in w) for w in (cfg.windows or DEFAULT_WINDOWS))
    torch.manual_seed(cfg.seed)
    # one input channel per CT window (3 by default; --windows may give another number)
    model = build_model(timm_name, kwargs, len(class_names), in_chans=len(windows), pretrained=cfg.pretrained)
    input_size = model_input_size(model)
    n_params = sum(p.numel() for p in model.parameters())
    how = "" if cfg.model else f" (default on {device.type}: {'paper' if device.type == 'cuda' else 'tiny'}; pass --model to choose)"
    log(f"model: {model_name}{how} -> timm {timm_name} {kwargs}, {n_params / 1e6:.2f} M parameters, input {input_size} px")
    log(f"device: {device}, torch threads: {torch.get_num_threads()}, task: {cfg.task} ({len(class_names)} logits)")
    if cfg.init and not cfg.resume:
        skipped = init_from(model, cfg.init)
        log(f"initialised from {cfg.init}" + (f" (new classifier head: {', '.join(skipped)})" if skipped else ""))
    model.to(device)

    resize = cfg.resize or default_resize(model_name, input_size)
    preprocessor = Preprocessor(input_size, windows, resize=resize)
    if resize:
        log(f"preprocessing: shorter side resized to {resize} px, centre crop {input_size} px")
    # Centre the [0, 1] windows on 0. Why: Swin normalises every patch token (LayerNorm right after
    # the patch embedding), which removes most of the difference between a uniformly dim (brain)
    # and a uniformly bright (blood) patch when all inputs are positive; centred inputs keep it.
    normalization = {"mean": [0.5] * len(windows), "std": [0.5] * len(windows)}

    # ---- data --------------------------------------------------------------------------------
    curriculum = Curriculum(cfg.curriculum_start, cfg.curriculum_hold, cfg.curriculum_shrink) if cfg.is_phantom else Curriculum()
    loader_kw = dict(num_workers=cfg.workers, pin_memory=device.type == "cuda",
                     worker_init_fn=_worker_init if cfg.workers else None)
    data_info: dict[str, Any]
    if cfg.is_phantom:
        from .sources import PhantomStream, phantom_validation_set

        render_size = cfg.render_size or input_size
        steps_per_epoch = cfg.steps_per_epoch
        total_steps = cfg.epochs * steps_per_epoch
        xv, yv = phantom_validation_set(seed=cfg.seed, n=cfg.val_size, preprocessor=preprocessor,
                                        render_size=render_size, prevalence=cfg.prevalence, progress=cfg.progress)

        def train_batches(epoch: int):
            stream = PhantomStream(seed=cfg.seed, start=epoch * steps_per_epoch, stop=(epoch + 1) * steps_per_epoch,
                                   total_steps=total_steps, batch_size=cfg.batch_size, preprocessor=preprocessor,
                                   render_size=render_size, prevalence=cfg.prevalence, curriculum=curriculum)
            return torch.utils.data.DataLoader(stream, batch_size=None, **loader_kw)

        def val_batches():
            return _tensor_batches(xv, yv, max(cfg.batch_size, 64))

        has_val = True
        data_info = {"source": "phantom-stream", "render_size": render_size, "val_size": cfg.val_size,
                     "val_positives": int((yv[:, -1] > 0.5).sum()), "prevalence": cfg.prevalence}
        log(f"data: phantom stream, {cfg.batch_size} fresh slices per step, {steps_per_epoch} steps per epoch; "
            f"validation: {cfg.val_size} fixed realistic slices ({data_info['val_positives']} positive)"
            + (f"; curriculum: lesion scale {curriculum.start} for {curriculum.hold:.0%} of the run, "
               f"shrinking to 1 over {curriculum.shrink:.0%}" if curriculum.active else ""))
    else:
        from .sources import EpochSampler, SliceDataset, balanced_weights, epoch_order, open_training_data, subject_split

        ds = open_training_data(cfg.data, cfg.layout, skip_bad=cfg.skip_bad)
        skipped = list(getattr(ds, "skipped", []))
        if skipped:
            from ..data.base import skipped_summary

            log(skipped_summary(skipped))
        records = list(ds.records)[: cfg.limit] if cfg.limit else list(ds.records)
        # A NaN label means "not known" (e.g. a partial RSNA CSV): such slices cannot be trained on.
        need = slice(-1, None) if cfg.task == "binary" else slice(None)
        known = [i for i, r in enumerate(records) if not np.isnan(np.asarray(r.labels, dtype=float)[need]).any()]
        if len(known) < len(records):
            log(f"skipping {len(records) - len(known)} slices whose {cfg.task} labels are unknown (NaN)")
        if not known:
            raise DataError(f"no slice of {cfg.data!r} has known {cfg.task} labels")
        train_subj, val_subj = subject_split([records[i].subject for i in known], cfg.val_fraction, cfg.seed)
        tr_idx = [i for i in known if str(records[i].subject) in train_subj]
        va_idx = [i for i in known if str(records[i].subject) in val_subj]
        tr_ds = SliceDataset(ds, tr_idx, preprocessor, seed=cfg.seed, augment=cfg.augment)
        va_ds = SliceDataset(ds, va_idx, preprocessor, seed=cfg.seed, augment=False)
        any_tr = np.array([float(np.asarray(records[i].labels)[-1]) for i in tr_idx])
        weights = balanced_weights(any_tr) if cfg.balanced else None
        steps_per_epoch = -(-len(tr_idx) // cfg.batch_size)
        total_steps = cfg.epochs * steps_per_epoch

        def train_batches(epoch: int):
            sampler = EpochSampler(epoch_order(len(tr_idx), epoch, cfg.seed, weights), epoch, cfg.batch_size)
            return torch.utils.data.DataLoader(tr_ds, batch_sampler=sampler, **loader_kw)

        def val_batches():
            return torch.utils.data.DataLoader(va_ds, batch_size=max(cfg.batch_size, 64), shuffle=False, **loader_kw)

        has_val = len(va_idx) > 0
        data_info = {"source": cfg.data, "layout": cfg.layout, "train_slices": len(tr_idx), "val_slices": len(va_idx),
                     "train_subjects": sorted(train_subj), "val_subjects": sorted(val_subj),
                     "train_positives": int(any_tr.sum())}
        log(f"data: {cfg.layout} {cfg.data}: {len(tr_idx)} training slices ({int(any_tr.sum())} positive) from "
            f"{len(train_subj)} subjects, {len(va_idx)} validation slices from {len(val_subj)} subjects"
            + (", class-balanced sampling" if cfg.balanced else ""))

    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, round(0.05 * total_steps))
    curriculum_end_epoch = math.ceil(curriculum.end_step(total_steps) / steps_per_epoch)

    # ---- optimiser, AMP ----------------------------------------------------------------------
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def amp_ctx():
        return torch.autocast("cuda", dtype=amp_dtype) if use_amp else nullcontext()

    # An exponential moving average of the weights (timm's ModelEmaV3) smooths the step-to-step
    # noise of a stream of fresh slices; when on, it is what is validated and saved.
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema)
    scored = model if ema is None else ema.module  # the weights that are validated and saved

    # ---- state (fresh or resumed) ------------------------------------------------------------
    start_epoch, step, elapsed_before = 0, 0, 0.0
    best_val, best_epoch, bad_epochs = math.inf, -1, 0
    best_metrics: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    fp = _fingerprint(cfg)
    if cfg.resume:
        try:
            state = torch.load(resume_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read {str(resume_path)!r}: corrupt or not written by xaiseg train "
                                  f"({type(exc).__name__}); start the run again in another --out") from None
        saved_fp = {k: v for k, v in json.loads(state["fingerprint"]).items() if k not in _RESUME_FREE}
        # An option added to xaiseg after the run started was, for that run, at its default.
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
        saved_fp = {**_jsonable({k: defaults[k] for k in fp if k not in saved_fp and k in defaults}), **saved_fp}
        diff = sorted(k for k in set(fp) | set(saved_fp) if fp.get(k) != saved_fp.get(k))
        if diff:
            raise ConfigError(f"--resume with different options than the interrupted run: {', '.join(diff)}")
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # parameter groups of another size: written by an older xaiseg
            raise CheckpointError(f"{str(resume_path)!r} was written by an xaiseg whose optimiser grouped the "
                                  "parameters differently (weight-decay fix); start the run again") from None
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start_epoch, step = int(state["epoch"]), int(state["step"])
        best_val, best_epoch, bad_epochs = float(state["best_val"]), int(state["best_epoch"]), int(state["bad_epochs"])
        elapsed_before = float(state["elapsed_s"])
        loop = json.loads(state["loop"])
        history, best_metrics = loop["history"], loop["best_metrics"]
        log(f"resumed from {resume_path} after epoch {start_epoch} (step {step})")
        if start_epoch >= cfg.epochs or loop.get("stopped_early"):
            log("nothing left to do: the run had finished")

    def checkpoint_config(metrics: dict[str, Any]) -> dict[str, Any]:
        import timm

        return {
            "timm_name": timm_name, "model_kwargs": kwargs, "preset": model_name if model_name in PRESETS else None,
            "num_classes": len(class_names), "in_chans": len(windows), "task": cfg.task,
            "class_names": class_names, "target_index": target_index, "input_size": input_size,
            "resize": resize, "windows": [list(w) for w in windows], "normalization": normalization,
            "metrics": metrics, "data": data_info, "training": cfg.to_dict(),
            "versions": {"xaiseg": __version__, "torch": torch.__version__, "timm": timm.__version__},
        }

    log.release()  # set-up succeeded: its lines go to the terminal and train.log now

    # ---- loop --------------------------------------------------------------------------------
    from tqdm.auto import tqdm

    stopped_early = bool(history and history[-1].get("stopped_early"))
    model.train()
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs if not stopped_early else start_epoch):
        t_epoch = time.perf_counter()
        losses: list[float] = []
        scale = curriculum.scale(step, total_steps)
        bar = tqdm(train_batches(epoch), total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress, leave=False, dynamic_ncols=True)
        for x, y in bar:
            lr = cfg.lr * lr_factor(step, total_steps, warmup, cfg.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = lr
            x, y = normalize(x.to(device, non_blocking=True), normalization), y.to(device, non_blocking=True)
            with amp_ctx():
                loss = task_loss(model(x), y, cfg.task, cfg.focal_gamma)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:  # timm: the first update copies the weights, later ones average
                ema.update(model, step=step + 1)
            losses.append(float(loss.detach()))
            step += 1
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.2e}",
                            **({"scale": f"{curriculum.scale(step - 1, total_steps):.2f}"} if curriculum.active else {}))
        bar.close()
        if not losses:
            raise ConfigError("an epoch had no training batches (empty training split?)")
        train_s = time.perf_counter() - t_epoch
        rec: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": float(np.mean(losses))}
        if curriculum.active:
            rec["lesion_scale_start"], rec["lesion_scale_end"] = scale, curriculum.scale(step - 1, total_steps)
        if has_val:
            vm = _evaluate(scored, val_batches(), cfg.task, target_index, device, amp_ctx, normalization)
            rec.update({f"val_{k}": v for k, v in vm.items()})
        rec["epoch_s"] = time.perf_counter() - t_epoch
        rec["steps_per_s"] = len(losses) / train_s
        rec["elapsed_s"] = elapsed_before + time.perf_counter() - t_start
        val_loss = rec.get("val_loss", rec["train_loss"])
        improved = val_loss < best_val
        if improved:
            best_val, best_epoch, bad_epochs = val_loss, epoch + 1, 0
            best_metrics = {k: v for k, v in rec.items() if k.startswith("val_") or k in ("epoch", "step", "train_loss")}
            best_metrics["elapsed_s"] = rec["elapsed_s"]
            save_checkpoint(out, scored, checkpoint_config(best_metrics))
        elif epoch + 1 > curriculum_end_epoch:
            bad_epochs += 1  # early stopping counts only once the lesions are realistic
        rec["best"] = improved
        if cfg.patience and bad_epochs >= cfg.patience and has_val:
            rec["stopped_early"] = stopped_early = True
        history.append(_jsonable(rec))
        with open(out / LOG_FILE, "a") as f:
            f.write(json.dumps(history[-1]) + "\n")
        _atomic_torch_save(
            {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.module.state_dict() if ema is not None else None,
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "epoch": epoch + 1, "step": step, "best_val": best_val, "best_epoch": best_epoch,
                "bad_epochs": bad_epochs, "elapsed_s": rec["elapsed_s"], "fingerprint": json.dumps(fp),
                "loop": json.dumps({"history": history, "best_metrics": _jsonable(best_metrics), "stopped_early": stopped_early}),
            },
            resume_path,
        )
        log(_epoch_line(rec, cfg.epochs))
        if on_epoch_end is not None:
            on_epoch_end(history[-1])
        if stopped_early:
            log(f"early stopping: no lower validation loss for {cfg.patience} epochs")
            break

    wall = elapsed_before + time.perf_counter() - t_start
    if best_epoch < 0:
        raise ConfigError("no epoch was trained (check --epochs)")
    # Final config: same weights (best epoch), plus the run's wall time.
    cfg_path = out / CONFIG_FILE
    final = json.loads(cfg_path.read_text())
    final["metrics"] = {**_jsonable(best_metrics), "best_epoch": best_epoch, "epochs_run": len(history), "wall_s": wall}
    tmp = cfg_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(final, indent=2) + "\n")
    os.replace(tmp, cfg_path)
    auc = best_metrics.get("val_auc")
    log(f"done in {wall:.0f} s: best epoch {best_epoch}, val loss {best_val:.4f}"
        + (f", val AUC {auc:.4f}" if isinstance(auc, float) and not math.isnan(auc) else "") + f"; checkpoint: {out}")
    return TrainResult(out=out, best_epoch=best_epoch, metrics=final["metrics"], history=history,
                       stopped_early=stopped_early, wall_s=wall, model=scored.eval())


def _worker_init(_worker_id: int) -> None:
    # Loader workers render/read slices; one thread each keeps them from fighting the main process.
    torch.set_num_threads(1)


def _epoch_line(rec: dict[str, Any], epochs: int) -> str:
    def f(key: str, fmt: str = ".4f") -> str:
        v = rec.get(key)
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    s = f"epoch {rec['epoch']}/{epochs} step {rec['step']}: train loss {f('train_loss')}"
    if "val_loss" in rec:
        s += (f", val loss {f('val_loss')}, AUC {f('val_auc')}, acc {f('val_accuracy', '.3f')}, "
              f"sens {f('val_sensitivity', '.3f')}, spec {f('val_specificity', '.3f')}")
    if "lesion_scale_end" in rec:
        s += f", lesion scale {rec['lesion_scale_start']:.2f}->{rec['lesion_scale_end']:.2f}"
    s += f" ({rec['epoch_s']:.0f} s, {rec['steps_per_s']:.2f} steps/s)" + (" *" if rec.get("best") else "")
    return s
