"""Training the weakly supervised (slice-label) Swin classifier, and loading it back.

Library use::

    from xaiseg.training import TrainConfig, train
    train(TrainConfig(out="runs/tiny", data="phantom", model="tiny"))  # the curriculum is on by default
    loaded = xaiseg.load_model("runs/tiny")        # .model (eval), .config, .preprocessor
"""
from __future__ import annotations

from pathlib import Path

from .checkpoint import LoadedModel, load_model, read_config, save_checkpoint
from .config import TrainConfig
from .curriculum import Curriculum, lr_factor
from .presets import PRESETS, Preset, build_model, parse_model_kwargs, resolve_model
from .trainer import TrainResult, train
from .verdict import checkpoint_verdict, maps_warning


def default_checkpoint() -> Path:
    """The shipped checkpoint: the ``tiny`` preset trained on the phantom (binary task) by
    ``xaiseg train`` (command, seed and metrics in its config.json; docs/training.md)."""
    return Path(__file__).resolve().parent.parent / "assets" / "phantom-tiny"


__all__ = [
    "PRESETS",
    "Curriculum",
    "LoadedModel",
    "Preset",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "checkpoint_verdict",
    "default_checkpoint",
    "load_model",
    "lr_factor",
    "maps_warning",
    "parse_model_kwargs",
    "read_config",
    "resolve_model",
    "save_checkpoint",
    "train",
]
