"""The training loop behind ``xaiseg train``.

One function, :func:`train`, runs a whole (or resumed) run and writes into ``cfg.out``:

- ``model.safetensors`` + ``config.json``: the epoch with the lowest validation loss so far
  (a loadable checkpoint exists from the first epoch on; ``xaiseg.load_model`` reads it);
- ``train_log.jsonl``: one JSON object per epoch (train/val loss, val AUC, accuracy,
  sensitivity, specificity, learning rate, lesion scale, wall time, steps/s);
- ``train.log``: the human-readable log;
- ``resume.pt``: model, optimiser, AMP scaler, RNG and loop state at the end of the last epoch,
  read back with ``torch.load(weights_only=True)`` by ``--resume``.

Started by torchrun on several processes, it trains with DistributedDataParallel (see
:mod:`.ddp`): rank 0 alone writes these files, and the others follow its decisions.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..distributed import (World, broadcast_from_main, current_world, gather_to_main, lost_peer, process_group,
                           rank_device, sum_over_ranks)
from ..errors import CheckpointError, ConfigError, XaisegError
from ..output.paths import check_out_dir
from . import ddp
from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, jsonable, detection_probability, init_from, normalize, save_checkpoint
from .config import TrainConfig
from ..workers import default_workers
from .run_files import LOG_FILE, RESUME_FILE, RESUME_FREE, TEXT_LOG, RunLog, check_same_options, run_fingerprint
from .curriculum import Curriculum, lr_factor
from .evaluation import detection_metrics, per_label_auc
from .losses import task_loss
from .precision import RESUME_PRECISION_KEYS, autocast_factory, check_resume_precision, describe, resolve_precision
from .presets import (PRESETS, build_model, default_model_name, default_resize, image_size_key, model_input_size,
                      resolve_model)

# What a run started before an option existed did instead of that option's default.
_BEFORE_ADDED = {"select": "val-loss"}
# How the network and its input were asked for; a resume compares what they gave ("built",
# "resize_used") instead, so a preset changed by a later xaiseg can be named by its timm kwargs.
NETWORK_AS_GIVEN = ("model", "model_kwargs", "image_size", "resize")
_CRITERION = {"val-auc": "validation AUC", "val-loss": "validation loss", "last": "epoch"}


def selection_score(rec: dict[str, Any], select: str) -> float:
    """Lower is better: the epoch's score under ``--select``. Without a validation set (or an
    AUC, when it holds one class) the validation loss, then the training loss, stand in."""
    if select == "last":
        return -float(rec["epoch"])
    auc = rec.get("val_auc")
    if select == "val-auc" and auc is not None and math.isfinite(auc):
        return -float(auc)
    return float(rec.get("val_loss", rec["train_loss"]))


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


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with no weight decay on norms, biases and the model's ``no_weight_decay()`` names
    (Swin: the relative-position bias tables), via timm's grouping."""
    from timm.optim import param_groups_weight_decay

    no_decay = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    # by keyword: timm 1.0.x later put a bool (weight_decay_exclude_1d) third, where the list was
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_decay)
    return torch.optim.AdamW(groups, lr=lr)


def _evaluate(model: nn.Module, batches, task: str, target_index: int, device: torch.device,
              normalization: dict[str, Any]) -> dict[str, Any]:
    """Validation, always in fp32: bf16 logits (3 significant digits) would tie slices that the
    benchmark, reading the checkpoint in fp32, tells apart."""
    model.eval()
    losses, weights, probs, labels, all_probs = [], [], [], [], []
    with torch.no_grad():
        for x, y in batches:
            x, y = normalize(x.to(device, non_blocking=True), normalization), y.to(device)
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
    world = current_world()  # several processes under torchrun, else a world of one
    out = check_out_dir(cfg.out) if world.is_main else Path(cfg.out)  # only rank 0 writes there
    fresh = not out.exists()
    if not world.distributed:
        return _train_guarded(cfg, on_epoch_end, world, out, fresh)
    device = ddp.check_world(cfg.batch_size, cfg.device, world)
    if not world.is_main:  # rank 0 alone shows progress
        cfg = dataclasses.replace(cfg, progress=False)
    with process_group(world, device):
        try:
            return _train_guarded(cfg, on_epoch_end, world, out, fresh)
        except RuntimeError as exc:  # a collective whose other end stopped: one line, not a traceback
            resumable = (out / RESUME_FILE).is_file() if world.is_main else None
            lost = lost_peer(exc, world, resumable)
            if lost is None:
                raise
            raise lost from None


def _train_guarded(cfg: TrainConfig, on_epoch_end: Callable[[dict[str, Any]], None] | None, world: World,
                   out: Path, fresh: bool) -> TrainResult:
    try:
        return _train(cfg, on_epoch_end, world)
    except XaisegError:
        # A bad model name, --init file or data set is found while setting up, after the log
        # was opened: leave nothing behind unless an epoch finished (then resume.pt matters).
        if world.is_main and not cfg.resume and not (out / RESUME_FILE).exists():
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
            else:
                (out / TEXT_LOG).unlink(missing_ok=True)
        raise


@dataclass
class _Setup:
    """What the set-up of a run decides: the model and how its inputs are made."""

    model: nn.Module
    name: str
    timm_name: str
    kwargs: dict[str, Any]
    class_names: list[str]
    target_index: int
    windows: tuple[tuple[float, float], ...]
    input_size: int
    resize: int | None
    preprocessor: Any
    normalization: dict[str, Any]


@dataclass
class _Optim:
    optimizer: torch.optim.Optimizer
    scaler: Any
    amp_ctx: Callable[[], Any]
    precision: str  # fp32 | bf16 | fp16, as resolved for the device
    ema: Any  # timm ModelEmaV3 or None
    scored: nn.Module  # the weights that are validated and saved (the EMA's when on)


@dataclass
class _State:
    """The loop's state: what resume.pt carries from one epoch to the next."""

    start_epoch: int = 0
    step: int = 0
    elapsed_before: float = 0.0
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


def _prepare_out(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    resume_path = out / RESUME_FILE
    if cfg.resume and not resume_path.is_file():
        raise ConfigError(f"--resume: {str(resume_path)!r} does not exist (nothing to resume in {str(out)!r})")
    if not cfg.resume and out.exists() and any((out / n).exists() for n in (RESUME_FILE, WEIGHTS_FILE, LOG_FILE)):
        raise ConfigError(f"{str(out)!r} already holds a training run; use --resume to continue it or another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _setup_model(cfg: TrainConfig, device: torch.device, log: RunLog) -> _Setup:
    from ..data.constants import DEFAULT_WINDOWS
    from ..data.preprocess import Preprocessor

    phantom = cfg.is_phantom  # reads a written phantom's phantom.json: once
    model_name = cfg.model or default_model_name(device.type, phantom)
    timm_name, kwargs = resolve_model(model_name, cfg.model_kwargs)
    if cfg.image_size:
        kwargs[image_size_key(timm_name)] = int(cfg.image_size)
    class_names, target_index = task_classes(cfg.task)
    windows = tuple(tuple(float(v) for v in w) for w in (cfg.windows or DEFAULT_WINDOWS))
    torch.manual_seed(cfg.seed)
    # one input channel per CT window (3 by default; --windows may give another number)
    model = build_model(timm_name, kwargs, len(class_names), in_chans=len(windows), pretrained=cfg.pretrained)
    input_size = model_input_size(model)
    n_params = sum(p.numel() for p in model.parameters())
    on_stream = " and the phantom stream" if phantom and device.type != "cuda" else ""
    how = "" if cfg.model else f" (the default on {device.type}{on_stream}; pass --model to choose)"
    lib = "transformers" if timm_name.startswith("hf:") else "timm"
    log(f"model: {model_name}{how} -> {lib} {timm_name.removeprefix('hf:')} {kwargs}, {n_params / 1e6:.2f} M parameters, "
        f"input {input_size} px")
    log(f"device: {device}, torch threads: {torch.get_num_threads()}, precision: "
        f"{describe(cfg.precision, device)}, task: {cfg.task} "
        f"({len(class_names)} logits)")
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
    return _Setup(model, model_name, timm_name, kwargs, class_names, target_index, windows, input_size, resize,
                  preprocessor, normalization)


def _setup_optim(cfg: TrainConfig, model: nn.Module, device: torch.device) -> _Optim:
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    precision = resolve_precision(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")  # bf16 keeps fp32's exponent range
    amp_ctx = autocast_factory(precision, device)

    # An exponential moving average of the weights (timm's ModelEmaV3) smooths the step-to-step
    # noise of a stream of fresh slices; when on, it is what is validated and saved.
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema)
    return _Optim(optimizer, scaler, amp_ctx, precision, ema, model if ema is None else ema.module)


def _read_resume(cfg: TrainConfig, resume_path: Path, fp: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """resume.pt of an interrupted run, checked to have been started with the same options."""
    try:
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {str(resume_path)!r}: corrupt or not written by xaiseg train "
                              f"({type(exc).__name__}); start the run again in another --out") from None
    saved_fp = {k: v for k, v in json.loads(state["fingerprint"]).items() if k not in RESUME_FREE}
    check_resume_precision(saved_fp, state.get("precision_used"), cfg.precision, device)
    # An option added to xaiseg after the run started was, for that run, at its default.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    defaults.update(_BEFORE_ADDED)
    saved_fp = {**jsonable({k: defaults[k] for k in fp if k not in saved_fp and k in defaults}), **saved_fp}
    now = dict(fp)
    if "built" in saved_fp:  # the network itself was recorded: how it was asked for may differ
        for k in NETWORK_AS_GIVEN:
            saved_fp.pop(k, None)
            now.pop(k, None)
        saved_fp.setdefault("resize_used", now["resize_used"])  # not recorded by the first runs with "built"
    else:  # an older run: --model as given (None: the default then); _restore checks the weights
        saved_fp.update(built=now["built"], resize_used=now["resize_used"])
        if saved_fp.get("model") is None:
            saved_fp["model"] = now["model"]
    check_same_options(saved_fp, now, RESUME_PRECISION_KEYS)
    return state


def _restore(cfg: TrainConfig, state: dict[str, Any], model: nn.Module, opt: _Optim, device: torch.device,
             world: World, log: Callable[[str], None]) -> _State:
    """The state after the last finished epoch of an interrupted run (weights, optimiser, RNG, loop)."""
    resume_path = Path(cfg.out) / RESUME_FILE
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:  # a run of an older xaiseg, whose fingerprint lacks the network built
        raise CheckpointError(f"{str(resume_path)!r} holds the weights of another network: pass the --model "
                              "(and --model-kwargs) the run was started with (its train.log names it)") from None
    if opt.ema is not None:
        opt.ema.module.load_state_dict(state["ema"])
    try:
        opt.optimizer.load_state_dict(state["optimizer"])
    except ValueError:  # parameter groups of another size: written by an older xaiseg
        raise CheckpointError(f"{str(resume_path)!r} was written by an xaiseg whose optimiser grouped the "
                              "parameters differently (weight-decay fix); start the run again") from None
    if state.get("scaler"):
        opt.scaler.load_state_dict(state["scaler"])
    ddp.restore_rng(state, device, world, cfg.seed, int(state["epoch"]))
    ranks = len(state.get("rank_rng") or [None])
    if ranks != world.size:
        log(f"resumed on {world.size} process(es), the run had {ranks}: same global batch and schedule; "
            "the random streams of drop-path and of the phantom stream's slices are those of the new number")
    loop = json.loads(state["loop"])
    st = _State(int(state["epoch"]), int(state["step"]), float(state["elapsed_s"]), float(state["best_val"]),
                int(state["best_epoch"]), int(state["bad_epochs"]), loop["best_metrics"], loop["history"])
    st.stopped_early = bool(st.history and st.history[-1].get("stopped_early"))
    log(f"resumed from {resume_path} after epoch {st.start_epoch} (step {st.step})")
    if st.start_epoch >= cfg.epochs or loop.get("stopped_early"):
        log("nothing left to do: the run had finished")
    return st


def _save_resume(path: Path, model: nn.Module, opt: _Optim, st: _State, epoch: int, fp: dict[str, Any],
                 device: torch.device, rank_rng: list[dict[str, Any]] | None) -> None:
    """``rank_rng``: every rank's random state under torchrun (rank 0's is also ``torch_rng``)."""
    _atomic_torch_save(
        {
            **({"rank_rng": rank_rng} if rank_rng and len(rank_rng) > 1 else {}),
            "model": model.state_dict(), "optimizer": opt.optimizer.state_dict(),
            "ema": opt.ema.module.state_dict() if opt.ema is not None else None,
            "scaler": opt.scaler.state_dict() if opt.scaler.is_enabled() else None, "precision_used": opt.precision,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "epoch": epoch, "step": st.step, "best_val": st.best_val, "best_epoch": st.best_epoch,
            "bad_epochs": st.bad_epochs, "elapsed_s": st.history[-1]["elapsed_s"], "fingerprint": json.dumps(fp),
            "loop": json.dumps({"history": st.history, "best_metrics": jsonable(st.best_metrics),
                                "stopped_early": st.stopped_early}),
        },
        path,
    )


def _checkpoint_config(cfg: TrainConfig, m: _Setup, data_info: dict[str, Any], metrics: dict[str, Any],
                       world: World, precision: str) -> dict[str, Any]:
    import timm

    return {
        "timm_name": m.timm_name, "model_kwargs": m.kwargs, "preset": m.name if m.name in PRESETS else None,
        "num_classes": len(m.class_names), "in_chans": len(m.windows), "task": cfg.task,
        "class_names": m.class_names, "target_index": m.target_index, "input_size": m.input_size,
        "resize": m.resize, "windows": [list(w) for w in m.windows], "normalization": m.normalization,
        "metrics": metrics, "data": data_info,
        # --batch-size is the global batch, whatever the number of processes (docs/training.md)
        "training": {**cfg.to_dict(), "world_size": world.size, "global_batch_size": cfg.batch_size,
                     "precision_used": precision},
        "versions": {"xaiseg": __version__, "torch": torch.__version__, "timm": timm.__version__},
    }


@dataclass
class _Ranks:
    """Where this process trains: its world, its device and the module forward is called on
    (the model itself alone, its DistributedDataParallel wrapper under torchrun)."""

    world: World
    device: torch.device
    net: nn.Module


def _step_loss(loss: torch.Tensor, n: int, world: World) -> tuple[torch.Tensor, float]:
    """(the loss to back-propagate, the global batch's mean loss). Alone: the loss as it is.
    Under DDP the ranks' sums are added up, so every rank logs the same mean and makes the same
    divergence decision, and each rank's loss is weighted as :mod:`.ddp` explains."""
    if not world.distributed:
        return loss, float(loss.detach())
    total, n_all = sum_over_ranks([float(loss.detach()) * n, n], world)
    return loss * (n * world.size / n_all), total / n_all


def _train_epoch(cfg: TrainConfig, epoch: int, model: nn.Module, opt: _Optim, batches: Any, st: _State,
                 schedule: tuple[int, int, Curriculum], ranks: _Ranks, normalization: dict[str, Any],
                 counts: list[int] | None = None):
    """One epoch of optimiser steps; returns the losses and the last learning rate.

    ``counts``: per step, how many of this rank's slices count (None: all; see ddp.shard)."""
    from ..progress import progress_bar

    total_steps, warmup, curriculum = schedule
    device = ranks.device
    losses: list[float] = []
    lr = cfg.lr
    bar = progress_bar(batches, total=len(batches) if hasattr(batches, "__len__") else None,
                       desc=f"epoch {epoch + 1}/{cfg.epochs}", enabled=cfg.progress, leave=False, dynamic_ncols=True)
    for i, (x, y) in enumerate(bar):
        lr = cfg.lr * lr_factor(st.step, total_steps, warmup, cfg.min_lr_ratio)
        for g in opt.optimizer.param_groups:
            g["lr"] = lr
        x, y = normalize(x.to(device, non_blocking=True), normalization), y.to(device, non_blocking=True)
        with opt.amp_ctx():
            loss = task_loss(ranks.net(x), y, cfg.task, cfg.focal_gamma)
        loss, value = _step_loss(loss, len(x) if counts is None else counts[i], ranks.world)
        if not math.isfinite(value):
            raise ConfigError(f"training diverged: the loss is {value} at step {st.step + 1} "
                              f"(learning rate {lr:.3g}); try a lower --lr")
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(loss).backward()  # under DDP: the ranks' gradients averaged
        if cfg.grad_clip:
            opt.scaler.unscale_(opt.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        if opt.ema is not None:  # timm: the first update copies the weights, later ones average
            opt.ema.update(model, step=st.step + 1)
        losses.append(value)
        st.step += 1
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.2e}",
                        **({"scale": f"{curriculum.scale(st.step - 1, total_steps):.2f}"} if curriculum.active else {}))
    bar.close()
    if not losses:
        raise ConfigError("an epoch had no training batches (empty training split?)")
    return losses, lr


@dataclass
class _Run:
    """A run once set up: what the epochs share."""

    out: Path
    log: Any  # RunLog on rank 0, ddp.NoLog elsewhere
    m: _Setup
    rd: Any  # run_data.RunData
    opt: _Optim
    ranks: _Ranks
    fp: dict[str, Any]
    schedule: tuple[int, int, Curriculum]  # total steps, warm-up steps, curriculum
    curriculum_end_epoch: int
    t_start: float


def _setup_run(cfg: TrainConfig, world: World) -> tuple[_Run, _State]:
    from .run_data import disk_data, phantom_data

    t_start = time.perf_counter()  # cfg was validated by train()
    device = rank_device(cfg.device, world)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # rank 0 alone writes into --out (the other ranks' machines need not see it)
    out = _prepare_out(cfg) if world.is_main else Path(cfg.out)
    log: Any = RunLog(out, cfg.progress) if world.is_main else ddp.NoLog()
    m = _setup_model(cfg, device, log)
    curriculum = cfg.curriculum()
    workers = default_workers() if cfg.workers is None else cfg.workers
    loader_kw = dict(num_workers=workers, pin_memory=device.type == "cuda",
                     worker_init_fn=_worker_init if workers else None)
    rd = (phantom_data if cfg.is_phantom else disk_data)(cfg, m.preprocessor, m.input_size, curriculum, loader_kw, log,
                                                         world)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else max(1, round(0.05 * rd.total_steps))
    curriculum_end_epoch = math.ceil(curriculum.end_step(rd.total_steps) / rd.steps_per_epoch)
    opt = _setup_optim(cfg, m.model, device)
    # the network built and its input resize, not --model as given: the default depends on the
    # device (a resumed run may change it), the data and the xaiseg version, and a preset may change
    fp = {**run_fingerprint(cfg), "model": m.name, "built": jsonable([m.timm_name, m.kwargs]), "resize_used": m.resize}
    ranks = _Ranks(world, device, ddp.wrap(m.model, device, world))
    ddp.seed_rank(cfg.seed, world)
    state = broadcast_from_main(_read_resume(cfg, out / RESUME_FILE, fp, device) if cfg.resume and world.is_main else None, world)
    st = _restore(cfg, state, m.model, opt, device, world, log) if cfg.resume else _State()
    if world.distributed:
        log(f"processes: {world.size} ({'nccl' if device.type == 'cuda' else 'gloo'}), global batch {cfg.batch_size} "
            f"= {' + '.join(str(ddp.shard_size(cfg.batch_size, World(r, world.size))) for r in range(world.size))} "
            "per process; rank 0 validates and writes")
    log.release()  # set-up succeeded: its lines go to the terminal and train.log now
    return _Run(out, log, m, rd, opt, ranks, fp, (rd.total_steps, warmup, curriculum), curriculum_end_epoch, t_start), st


def _train(cfg: TrainConfig, on_epoch_end: Callable[[dict[str, Any]], None] | None, world: World) -> TrainResult:
    run, st = _setup_run(cfg, world)
    m, rd, opt, curriculum = run.m, run.rd, run.opt, run.schedule[2]
    m.model.train()
    for epoch in range(st.start_epoch, cfg.epochs if not st.stopped_early else st.start_epoch):
        t_epoch = time.perf_counter()
        scale = curriculum.scale(st.step, rd.total_steps)
        losses, lr = _train_epoch(cfg, epoch, m.model, opt, _Sized(rd.train_batches(epoch), rd.steps_per_epoch), st,
                                  run.schedule, run.ranks, m.normalization, rd.train_counts(epoch))
        train_s = time.perf_counter() - t_epoch
        rank_rng = gather_to_main(ddp.rng_state(run.ranks.device), world)  # every rank's, for resume.pt
        if world.is_main:
            rec: dict[str, Any] = {"epoch": epoch + 1, "step": st.step, "lr": lr, "train_loss": float(np.mean(losses))}
            if curriculum.active:
                rec["lesion_scale_start"], rec["lesion_scale_end"] = scale, curriculum.scale(st.step - 1, rd.total_steps)
            if rd.has_val:
                vm = _evaluate(opt.scored, rd.val_batches(), cfg.task, m.target_index, run.ranks.device,
                               m.normalization)
                rec.update({f"val_{k}": v for k, v in vm.items()})
            rec["epoch_s"] = time.perf_counter() - t_epoch
            rec["steps_per_s"] = len(losses) / train_s
            rec["elapsed_s"] = st.elapsed_before + time.perf_counter() - run.t_start
            _end_epoch(cfg, run, rec, st, rank_rng)
            if on_epoch_end is not None:
                on_epoch_end(st.history[-1])
        st.stopped_early = broadcast_from_main(st.stopped_early, world)  # every rank stops with rank 0
        if st.stopped_early:
            run.log(f"early stopping: no better {_CRITERION[cfg.select]} for {cfg.patience} epochs")
            break
    wall = st.elapsed_before + time.perf_counter() - run.t_start
    result = _finish(run.out, st, wall, run.log, opt.scored) if world.is_main else None
    return _shared_result(result, opt.scored, world)


def _end_epoch(cfg: TrainConfig, run: _Run, rec: dict[str, Any], st: _State, rank_rng: list[Any] | None) -> None:
    """Rank 0's bookkeeping of a finished epoch: the best epoch so far (whose checkpoint it
    writes), early stopping, the epoch's record in the history and the log, and resume.pt
    (``rank_rng``: every rank's random state)."""
    score = selection_score(rec, cfg.select)
    improved = score < st.best_val
    if improved:
        st.best_val, st.best_epoch, st.bad_epochs = score, rec["epoch"], 0
        st.best_metrics = {k: v for k, v in rec.items() if k.startswith("val_") or k in ("epoch", "step", "train_loss")}
        st.best_metrics["elapsed_s"] = rec["elapsed_s"]
        save_checkpoint(run.out, run.opt.scored,
                        _checkpoint_config(cfg, run.m, run.rd.info, st.best_metrics, run.ranks.world,
                                           run.opt.precision))
    elif rec["epoch"] > run.curriculum_end_epoch:
        st.bad_epochs += 1  # early stopping counts only once the lesions are realistic
    rec["best"] = improved
    if cfg.patience and st.bad_epochs >= cfg.patience and run.rd.has_val:
        rec["stopped_early"] = st.stopped_early = True
    st.history.append(jsonable(rec))
    with open(run.out / LOG_FILE, "a") as f:
        f.write(json.dumps(st.history[-1]) + "\n")
    _save_resume(run.out / RESUME_FILE, run.m.model, run.opt, st, rec["epoch"], run.fp, run.ranks.device, rank_rng)
    run.log(_epoch_line(rec, cfg.epochs))


def _shared_result(result: TrainResult | None, scored: nn.Module, world: World) -> TrainResult:
    """Rank 0's result on every rank (each with its own copy of the model: DDP kept them equal)."""
    if not world.distributed:
        assert result is not None
        return result
    shared = broadcast_from_main(None if result is None else dataclasses.replace(result, model=None), world)
    return dataclasses.replace(shared, model=scored.eval())


class _Sized:
    """An iterable of batches with the epoch's number of steps (for the progress bar)."""

    def __init__(self, it: Any, n: int) -> None:
        self.it, self.n = it, n

    def __iter__(self):
        return iter(self.it)

    def __len__(self) -> int:
        return self.n


def _finish(out: Path, st: _State, wall: float, log: RunLog, scored: nn.Module) -> TrainResult:
    """Final config (same weights: the best epoch's; plus the run's wall time and its verdict)."""
    from .verdict import checkpoint_verdict

    if st.best_epoch < 0:
        raise ConfigError("no epoch was trained (check --epochs)")
    cfg_path = out / CONFIG_FILE
    final = json.loads(cfg_path.read_text())
    final["metrics"] = {**jsonable(st.best_metrics), "best_epoch": st.best_epoch, "epochs_run": len(st.history),
                        "wall_s": wall}
    verdict = checkpoint_verdict(final)
    final["verdict"] = verdict
    tmp = cfg_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(final, indent=2) + "\n")
    os.replace(tmp, cfg_path)
    auc = st.best_metrics.get("val_auc")
    log(f"done in {wall:.0f} s: best epoch {st.best_epoch}, val loss {st.best_metrics.get('val_loss', math.nan):.4f}"
        + (f", val AUC {auc:.4f}" if isinstance(auc, float) and not math.isnan(auc) else "") + f"; checkpoint: {out}")
    if verdict:  # the last line says it: this classifier's maps would not mean anything
        log(f"WARNING: the classifier is {verdict}; its maps will show contrast, not evidence "
            "(train longer, or check the data and labels)")
    return TrainResult(out=out, best_epoch=st.best_epoch, metrics=final["metrics"], history=st.history,
                       stopped_early=st.stopped_early, wall_s=wall, model=scored.eval())


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
