"""Segmenter checkpoints and ``load_segmenter``.

One model (``xaiseg train --task segmentation`` without ``--folds``)::

    DIR/model.safetensors, DIR/config.json      "kind": "segmenter", the subjects it saw

K folds (``--folds K``)::

    DIR/config.json                             "kind": "segmenter", "folds": [{"dir", "held_out"}...]
    DIR/fold-0/ ... DIR/fold-{K-1}/             one model each, as above

Each model's config.json records the architecture, MONAI kwargs, input pipeline (windows,
input size, resize, normalisation) and ``subjects``: ``train``, ``val`` (chose its best epoch)
and ``held_out`` (its fold). ``seen`` = train + val is what the leakage guard checks.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .._version import __version__
from ..output.atomic import write_json
from ..errors import CheckpointError
from ..training.checkpoint import (CONFIG_FILE, FORMAT, FORMAT_VERSION, SEGMENTER_KIND, WEIGHTS_FILE, _first_line,
                                   jsonable, normalize, preprocessor_from_config, read_checkpoint_json, read_weights,
                                   resolve_device)
from .folds import check_disjoint, unseen_models
from .presets import build_segmenter

FOLD_DIR = "fold-{}"
# what every fold model of one segmenter must share: the maps of all folds must be comparable
_SHARED = ("architecture", "input_size", "resize", "windows", "normalization", "out_channels", "in_chans")


def fold_dir(out: Path, fold: int) -> Path:
    return out / FOLD_DIR.format(fold)


def write_fold_index(out: Path, architecture: str, folds: list[list[str]], extra: Mapping[str, Any]) -> None:
    """DIR/config.json of a K-fold segmenter (written before the first fold trains, so the folds
    are fixed and a resumed run can check them)."""
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, "xaiseg_version": __version__, "kind": SEGMENTER_KIND,
           "architecture": architecture,
           "folds": [{"dir": FOLD_DIR.format(i), "held_out": list(f)} for i, f in enumerate(folds)], **jsonable(dict(extra))}
    write_json(out / CONFIG_FILE, cfg)


@dataclass
class SegmenterModel:
    """One trained network of a segmenter, and the subjects it saw."""

    model: nn.Module
    config: dict[str, Any]
    path: Path
    seen: frozenset[str]

    @property
    def label(self) -> str:
        return str(self.path)


@dataclass
class LoadedSegmenter:
    """A trained segmenter (one model, or one per fold) ready for inference.

    ``preprocessor`` windows and resizes an HU slice exactly as in training (the classifier's
    :class:`~xaiseg.data.preprocess.Preprocessor`); :meth:`models_for` is the leakage guard.
    """

    members: list[SegmenterModel]
    config: dict[str, Any]
    preprocessor: Any
    device: torch.device
    path: Path

    @property
    def architecture(self) -> str:
        return str(self.members[0].config["architecture"])

    @property
    def input_size(self) -> int:
        return int(self.members[0].config["input_size"])

    @property
    def folds(self) -> list[list[str]] | None:
        """The held-out subjects of each fold, or None for a single model."""
        folds = self.config.get("folds")
        return None if folds is None else [list(f["held_out"]) for f in folds]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(images, self.members[0].config.get("normalization"))

    def models_for(self, subject: str) -> list[SegmenterModel]:
        """The models that never saw ``subject`` (one with folds; LeakageError if none)."""
        return [self.members[i] for i in unseen_models(self.members, subject)]


def _member(d: Path, dev: torch.device) -> SegmenterModel:
    cfg = read_checkpoint_json(d)
    if cfg.get("kind") != SEGMENTER_KIND or "architecture" not in cfg or "folds" in cfg:
        raise CheckpointError(f"{str(d / CONFIG_FILE)!r} is not the config of one segmenter model")
    if not (d / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{str(d)!r} has no {WEIGHTS_FILE} yet (the fold has not finished an epoch); "
                              "finish training with the same xaiseg train command plus --resume")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_segmenter(cfg["architecture"], cfg["model_kwargs"], int(cfg["in_chans"]), int(cfg["out_channels"]),
                                int(cfg["input_size"]))
    try:
        model.load_state_dict(read_weights(d / WEIGHTS_FILE), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in {str(d / WEIGHTS_FILE)!r} do not fit its config.json: {_first_line(exc)}") from None
    subjects = cfg.get("subjects", {})
    seen = frozenset(map(str, [*subjects.get("train", []), *subjects.get("val", [])]))
    if seen & set(map(str, subjects.get("held_out", []))):
        raise CheckpointError(f"{str(d / CONFIG_FILE)!r} lists subjects both seen and held out; the checkpoint is corrupt")
    return SegmenterModel(model=model.to(dev).eval(), config=cfg, path=d, seen=seen)


def load_segmenter(directory: str | os.PathLike, device: str | torch.device | None = None) -> LoadedSegmenter:
    """Rebuild a segmenter trained by ``xaiseg train --task segmentation`` (one model or K folds).

    A classifier checkpoint, a fold that has not finished, or folds that overlap or disagree
    with their models' subject lists raise :class:`CheckpointError` in one line.
    """
    d = Path(directory)
    cfg = read_checkpoint_json(d)
    if cfg.get("kind") != SEGMENTER_KIND:
        raise CheckpointError(f"{str(d)!r} is a classifier checkpoint, not a segmenter; pass it as --checkpoint, or give "
                              "--segmenter a directory written by xaiseg train --task segmentation")
    dev = resolve_device(device)
    if "folds" not in cfg:
        members = [_member(d, dev)]
    else:
        check_disjoint([f["held_out"] for f in cfg["folds"]])
        members = [_member(d / f["dir"], dev) for f in cfg["folds"]]
        for f, m in zip(cfg["folds"], members):
            if sorted(map(str, m.config.get("subjects", {}).get("held_out", []))) != sorted(map(str, f["held_out"])):
                raise CheckpointError(f"{m.label!r} held out other subjects than {str(d / CONFIG_FILE)!r} says; "
                                      "the checkpoint is corrupt")
    for m in members[1:]:
        diff = [k for k in _SHARED if m.config.get(k) != members[0].config.get(k)]
        if diff:
            raise CheckpointError(f"the folds of {str(d)!r} differ in {', '.join(diff)}; the checkpoint is corrupt")
    pre = preprocessor_from_config(members[0].config)
    return LoadedSegmenter(members=members, config=cfg, preprocessor=pre, device=dev, path=d)
