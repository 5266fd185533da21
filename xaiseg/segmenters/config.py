"""The options of a segmenter run: the classifier's :class:`~xaiseg.training.TrainConfig` plus
``folds``, validated with the classifier's checks where they apply."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..training.config import TrainConfig

TASK = "segmentation"
# Classifier options that mean nothing to a segmenter: a value other than the default is an
# error (an option silently ignored would mislead).
_CLASSIFIER_ONLY = ("pretrained", "init", "balanced", "focal_gamma", "ema", "select", "curriculum_start",
                    "curriculum_hold", "curriculum_shrink")


# Options whose default differs from the classifier's. Why: a segmenter trains on the few hundred
# slices of a data set, not on a fresh stream; with the classifier's 32 x 10 epochs a fold of the
# randomised phantom got ~130 steps and a held-out Dice of 0.12-0.19 (docs/training.md).
TASK_DEPENDENT = ("epochs", "batch_size", "lr", "patience")


@dataclass
class SegmentationConfig(TrainConfig):
    """Every option of ``xaiseg train --task segmentation``; ``folds`` >= 2 trains one model per
    subject-wise fold (0: one model, its validation subjects split off by ``val_fraction``)."""

    task: str = TASK
    folds: int = 0
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    patience: int = 0  # the validation Dice of 2-4 heads is too noisy to stop on (docs/training.md)

    @property
    def is_phantom(self) -> bool:
        """Never: a segmenter learns from the masks of a data set on disk (a written phantom too)."""
        return False

    @classmethod
    def from_train_config(cls, cfg: TrainConfig, explicit: set[str] | None = None, **extra: Any) -> "SegmentationConfig":
        """The segmenter run of a classifier config; the options of ``TASK_DEPENDENT`` not in
        ``explicit`` (given by the user) take the segmenter's defaults (all of them when None)."""
        values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainConfig)}
        for name in TASK_DEPENDENT:
            if name not in (explicit or set()):
                values.pop(name)
        return cls(**{**values, "task": TASK, **extra})

    def validate(self) -> None:
        defaults = TrainConfig(out=self.out)
        for name in _CLASSIFIER_ONLY:
            if getattr(self, name) != getattr(defaults, name):
                option = "--curriculum" if name.startswith("curriculum") else "--" + name.replace("_", "-")
                raise ConfigError(f"{option} applies to the classifier tasks, not --task segmentation")
        if self.data == "phantom" or self.train_on == "stream":
            raise ConfigError("--task segmentation trains on masks of a data set on disk: write one with "
                              "`xaiseg phantom DIR` and pass --data DIR")
        if self.folds == 1 or self.folds < 0:
            raise ConfigError(f"--folds must be 0 (one model) or >= 2, got {self.folds}")
        # the classifier's checks of every shared option (its task check knows only its tasks)
        TrainConfig.validate(dataclasses.replace(self, task="binary"))
