"""The options of a training run (what ``xaiseg train`` parses), validated in one place."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .precision import PRECISIONS

if TYPE_CHECKING:  # pragma: no cover
    from .curriculum import Curriculum

TASKS = ("binary", "subtypes")
LAYOUTS = ("auto", "physionet", "rsna", "folder", "phantom")
SELECTIONS = ("val-auc", "val-loss", "last")
# Epochs when --epochs is not given. The phantom stream's: 3000 steps, with the 224 px model
# there (presets.default_model_name) the first setting whose training seeds all learned
# (validation AUC 0.88-0.90) where 1000 steps at 128 px stopped near 0.8 or at chance
# (docs/training.md, "bf16 on the CPU"). Data on disk: 10 passes over its slices.
PHANTOM_EPOCHS = 30
DISK_EPOCHS = 10


@dataclass
class TrainConfig:
    """Every option of a run. ``data="phantom"`` streams fresh phantom slices rendered on the fly
    (an *epoch* is then ``steps_per_epoch`` optimiser steps); any other ``data`` is a folder read
    with ``xaiseg.data.open_dataset(data, layout)``."""

    out: str
    data: str = "phantom"
    layout: str = "auto"  # of a data set on disk; "phantom" = PhysioNet layout written by `xaiseg phantom`
    model: str | None = None  # preset or timm name; None: presets.default_model_name (paper on CUDA)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    task: str = "binary"
    epochs: int | None = None  # None: PHANTOM_EPOCHS on the phantom stream, else DISK_EPOCHS
    batch_size: int = 32
    # 1e-3 and then 7e-4 collapsed to chance for one training seed on the randomised phantom
    # stream (the latter at 224 px); 5e-4 learned for all three (docs/training.md)
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int | None = None  # None: 5 % of all steps
    min_lr_ratio: float = 0.01
    image_size: int | None = None  # overrides the model's img_size
    resize: int | None = None  # shorter side before the centre crop; None: the preset's (paper: 422 for 384), else fit
    windows: tuple[tuple[float, float], ...] | None = None  # None: DEFAULT_WINDOWS
    seed: int = 0
    device: str = "auto"
    workers: int | None = None  # data-loader processes; None: xaiseg.workers.default_workers()
    threads: int | None = None  # torch.set_num_threads; None keeps torch's default
    pretrained: bool = False
    init: str | None = None
    val_fraction: float = 0.2
    patience: int = 5  # epochs without a better selection score (see select); 0 disables early stopping
    # Which epoch's weights are kept: the highest validation AUC (default), the lowest validation
    # loss, or the last epoch. Why not the loss: at a written phantom's ~17 % prevalence the lowest
    # loss rewarded a classifier biased to "negative", mid-curriculum (docs/training.md, run r2).
    select: str = "val-auc"
    balanced: bool = False
    focal_gamma: float = 0.0
    augment: bool = True
    grad_clip: float = 1.0
    ema: float = 0.0  # decay of an exponential moving average of the weights (0 = off); validated and saved instead
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: see precision.resolve_precision
    resume: bool = False
    limit: int | None = None  # use at most this many slices of the data set (quick runs)
    skip_bad: bool = False  # skip (count and report) bad files instead of stopping at the first
    # phantom stream
    steps_per_epoch: int = 100
    val_size: int = 512
    prevalence: float = 0.5
    # None (default): DEFAULT_CURRICULUM on the phantom stream, off otherwise
    curriculum_start: float | None = None
    curriculum_hold: float | None = None
    curriculum_shrink: float | None = None
    train_on: str = "auto"  # auto: the phantom stream for --data phantom and folders written by `xaiseg phantom`
    acquisition: str | None = None  # phantom stream: random | clean; None: a folder's own, else random
    render_size: int | None = None  # None: the model's input size
    progress: bool = True
    command: str | None = None  # the command line that started the run (recorded in config.json)

    def __post_init__(self) -> None:
        if self.epochs is None:
            self.epochs = PHANTOM_EPOCHS if self.is_phantom else DISK_EPOCHS

    @property
    def is_phantom(self) -> bool:
        """Training slices come from the phantom stream (see phantom_source)."""
        if self.data == "phantom" or self.train_on == "stream":
            return True
        if self.train_on == "disk":
            return False
        from .phantom_source import phantom_folder_meta, stream_matches

        meta = phantom_folder_meta(self.data)
        return meta is not None and stream_matches(meta)

    def curriculum(self) -> "Curriculum":
        """The lesion-size curriculum of this run (off unless the phantom stream is used)."""
        from .curriculum import DEFAULT_CURRICULUM, Curriculum

        given = (self.curriculum_start, self.curriculum_hold, self.curriculum_shrink)
        if not self.is_phantom:
            return Curriculum()
        if all(v is None for v in given):
            return Curriculum(*DEFAULT_CURRICULUM)
        return Curriculum(*(d if v is None else float(v) for v, d in zip(given, (1.0, 0.0, 0.0))))

    def stream_acquisition(self) -> str:
        """random | clean: how the phantom stream scans its heads (a folder's own setting)."""
        if self.acquisition:
            return self.acquisition
        from .phantom_source import phantom_folder_meta

        meta = phantom_folder_meta(self.data) or {}
        return "clean" if meta.get("acquisition") == "clean" else "random"

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ConfigError(msg)

        for f in fields(self):  # nan passes every comparison below and inf most of them
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                bad(f"--{f.name.replace('_', '-')} must be a finite number, got {v}")
        if self.precision not in PRECISIONS:
            bad(f"unknown --precision {self.precision!r}: use {', '.join(PRECISIONS)}")
        if self.task not in TASKS:
            bad(f"unknown task {self.task!r}: use binary or subtypes")
        if self.layout not in LAYOUTS:
            bad(f"unknown layout {self.layout!r}: use {', '.join(LAYOUTS)}")
        for name in ("epochs", "batch_size", "steps_per_epoch", "val_size"):
            if int(getattr(self, name)) < 1:
                bad(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            bad(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            bad(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.val_fraction < 1.0:
            bad(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.select not in SELECTIONS:
            bad(f"unknown --select {self.select!r}: use {', '.join(SELECTIONS)}")
        if self.patience < 0 or (self.workers is not None and self.workers < 0):
            bad("--patience and --workers must be >= 0")
        if self.focal_gamma < 0:
            bad(f"--focal-gamma must be >= 0, got {self.focal_gamma}")
        if self.focal_gamma and self.task != "subtypes":
            bad("--focal-gamma applies to --task subtypes (binary uses softmax cross-entropy)")
        if not 0.0 < self.prevalence < 1.0:
            bad(f"--prevalence must be in (0, 1), got {self.prevalence}")
        if self.grad_clip < 0:
            bad(f"--grad-clip must be >= 0 (0 = off), got {self.grad_clip}")
        if not 0.0 <= self.ema < 1.0:
            bad(f"--ema is a decay in [0, 1) (0 = off, e.g. 0.99), got {self.ema}")
        if self.seed < 0:
            bad(f"--seed must be >= 0, got {self.seed}")
        if self.resize is not None and self.resize < 1:
            bad(f"--resize must be >= 1, got {self.resize}")
        if self.threads is not None and self.threads < 1:
            bad(f"--threads must be >= 1, got {self.threads}")
        if self.limit is not None and self.limit < 2:
            bad(f"--limit must be >= 2, got {self.limit}")
        start, hold, shrink = (v or 0.0 for v in (self.curriculum_start, self.curriculum_hold, self.curriculum_shrink))
        if self.curriculum_start is not None and start < 1.0:
            bad(f"--curriculum START must be >= 1 (1 = realistic lesions), got {start}")
        if min(hold, shrink) < 0 or hold + shrink > 1:
            bad("--curriculum HOLD and SHRINK are fractions of the run, >= 0, that sum to <= 1")
        from .phantom_source import TRAIN_SOURCES

        if self.train_on not in TRAIN_SOURCES:
            bad(f"--train-on must be one of {', '.join(TRAIN_SOURCES)}, got {self.train_on!r}")
        if self.acquisition not in (None, "random", "clean"):
            bad(f"--acquisition must be random or clean, got {self.acquisition!r}")
        if not self.is_phantom:
            from pathlib import Path

            if not Path(self.data).exists():
                bad(f"data set {self.data!r} does not exist (use --data phantom for the built-in phantom stream)")
        if self.train_on == "stream" and self.data != "phantom":
            from .phantom_source import phantom_folder_meta, stream_matches

            meta = phantom_folder_meta(self.data)
            if meta is None or not stream_matches(meta):
                bad(f"--train-on stream needs --data phantom or a folder written by this xaiseg's `xaiseg phantom`; "
                    f"{self.data!r} is not one")
        if not self.is_phantom and (self.curriculum_start or 1.0) > 1.0:
            bad("the lesion-size curriculum needs the phantom stream (--data phantom, or a folder written by "
                "`xaiseg phantom`)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["windows"] = [list(w) for w in self.windows] if self.windows else None
        return d
