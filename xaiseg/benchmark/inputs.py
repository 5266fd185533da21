"""What a benchmark run reads: the data set, the classifier, and each slice as the model and
the scoring need it. Opened once, before the stages run."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.base import check_item
from ..errors import ConfigError
from ..training.checkpoint import detection_probability
from . import provenance
from .config import BenchmarkConfig
from .evaluate import SliceTruth
from .timing import StageClock


@dataclass
class Classifier:
    """The loaded classifier (what :func:`xaiseg.load_model` returns) and the logit it explains."""

    loaded: Any  # .model, .config, .preprocessor (and .normalize)
    checkpoint_dir: Path | None  # None for a model passed in memory
    checkpoint_sha256: str
    name: str | None = None  # its rows' NAME/ prefix; None when it is the run's only classifier

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.loaded.config)

    @property
    def target(self) -> int:
        return int(self.loaded.config.get("target_index", 1))

    @property
    def task(self) -> str:
        return str(self.loaded.config.get("task", "binary"))

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.loaded.config.get("class_names", [])]

    def batch(self, images: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """Preprocessed slices → the model's input batch on ``device``."""
        x = torch.stack(images).to(device)
        if hasattr(self.loaded, "normalize"):  # the checkpoint's per-channel normalisation, as in training
            x = self.loaded.normalize(x)
        return x

    def probability(self, x: torch.Tensor) -> np.ndarray:
        """P(hemorrhage) per slice of the batch, float64 on the host."""
        with torch.no_grad():
            return detection_probability(self.model(x), self.task, self.target).cpu().numpy().astype(np.float64)


@dataclass
class Inputs:
    """The opened data set and classifier, and the paths they were resolved from."""

    dataset: Any
    records: list[Any]
    data_path: Path | None
    layout: str
    classifiers: list[Classifier]  # in --checkpoint order; one for the default run
    embedded: bool  # the no-argument default run: the built-in phantom

    @property
    def classifier(self) -> Classifier:
        """The first classifier: whose preprocessing every classifier of the run shares."""
        return self.classifiers[0]


def open_inputs(cfg: BenchmarkConfig, device: torch.device, clock: StageClock, dataset: Any = None,
                model: Any = None) -> Inputs:
    """Open ``cfg.data`` (or use the open ``dataset``) and load ``cfg.checkpoint`` (or use the
    loaded ``model``) on ``device``."""
    from .defaults import resolve_data

    embedded = cfg.data is None and dataset is None
    layout = cfg.layout
    if dataset is None:
        from ..data import open_dataset  # the data layer is only needed now

        with clock("open data"):  # the first default run also generates the phantom here
            data_path, layout = resolve_data(cfg.data, cfg.layout, progress=cfg.progress)
        kwargs: dict[str, Any] = {"skip_bad": True} if cfg.skip_bad else {}
        if cfg.brain_mask not in ("auto", "none"):
            kwargs["brain_dir"] = Path(cfg.brain_mask)
        try:
            with clock("open data"):
                dataset = open_dataset(data_path, layout, **kwargs)
        except TypeError:
            raise ConfigError(f"--brain-mask DIR is not supported for the {layout!r} layout; use auto or none") from None
    else:
        data_path = Path(cfg.data) if cfg.data is not None else None
    if model is None:
        classifiers = load_classifiers(cfg, device, clock)
    else:
        if cfg.multi:
            raise ConfigError("a loaded model= stands for one classifier; pass the checkpoints as --checkpoint "
                              "NAME=DIR instead, or run each model alone")
        model.model.to(device)
        classifiers = [Classifier(model, None, provenance.state_dict_hash(model.model))]
    for c in classifiers:
        c.model.eval()
    return Inputs(dataset, list(dataset.records), data_path, layout, classifiers, embedded)


def load_classifiers(cfg: BenchmarkConfig, device: torch.device, clock: StageClock) -> list[Classifier]:
    """Every ``--checkpoint`` on ``device``, named when there are several. They must share the
    preprocessing (input size, CT windows, resize): each slice is read and put back once, so
    every row is scored on the same grid."""
    from .. import load_model
    from .defaults import resolve_checkpoint

    out = []
    for spec in cfg.checkpoints:
        with clock("load model"):
            checkpoint_dir = resolve_checkpoint(spec.path)
            out.append(Classifier(load_model(checkpoint_dir, device=device), checkpoint_dir,
                                  provenance.checkpoint_hash(checkpoint_dir), spec.name if cfg.multi else None))
    first = preprocessing(out[0])
    for c in out[1:]:
        if preprocessing(c) != first:
            raise ConfigError(f"--checkpoint {c.name} preprocesses slices differently from {out[0].name} "
                              f"({preprocessing(c)} vs {first}); compare classifiers trained with the same "
                              "--input-size, windows and resize")
    return out


def preprocessing(c: Classifier | dict[str, Any]) -> dict[str, Any]:
    """What decides a model's input (a classifier's or a checkpoint config's) and the way its
    maps go back to the slice grid."""
    cfg = c.config if isinstance(c, Classifier) else c
    windows = [[float(v) for v in w] for w in cfg.get("windows") or []]
    resize = cfg.get("resize")
    return {"input_size": int(cfg.get("input_size", 0)), "windows": windows,
            "resize": None if resize is None else int(resize)}


class SliceLoader:
    """Reads a slice once and derives what the model and the scoring need from it."""

    def __init__(self, dataset: Any, preprocessor: Any, brain_mode: str, clock: StageClock | None) -> None:
        self.ds = dataset
        self.pre = preprocessor
        self.brain_mode = brain_mode  # "auto" or "none"
        self.clock = clock if clock is not None else _untimed

    def for_threads(self, workers: int) -> "SliceLoader":
        """The loader to call from ``workers`` background threads: this one when there are none,
        else the same loader without a clock (the stage clock is the main thread's: it charges
        the time the main thread waits, see prefetch.py)."""
        return self if workers <= 0 else SliceLoader(self.ds, self.pre, self.brain_mode, None)

    def load(self, sid: int, brain: np.ndarray | None = None,
             model_input: bool = True) -> tuple[torch.Tensor | None, SliceTruth, dict]:
        """(model input before normalisation, the slice's truth on its own grid, the raw item).

        ``brain``: the slice's brain mask as the maps pass made it (then it is not computed
        again); ``model_input=False``: only what scoring needs (no windowing or resizing; the
        first element is None)."""
        with self.clock("load"):
            item = self.ds[sid]
            check_item(item, f"{item.get('source') or 'item'} slice {item.get('slice', sid)}")  # NaN, bad spacing
            hu = np.asarray(item["image"], dtype=np.float32)
            # data sets without masks (RSNA) still give detection metrics; their slices score as unmasked
            gt = np.asarray(item["mask"]) > 0 if item.get("mask") is not None else np.zeros(hu.shape, bool)
        with self.clock("preprocess"):
            if self.brain_mode == "none":
                brain = None
            elif brain is None:
                brain = item.get("brain")
                if brain is None:
                    brain = _auto_brain(hu, item["spacing"])
                brain = np.asarray(brain) > 0
            x = None
            if model_input:
                image, _m, _b, geometry = self.pre(hu)
                x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).float()
            else:
                geometry = self.pre.geometry(hu.shape)
        spacing = tuple(float(s) for s in item["spacing"])
        return x, SliceTruth(gt=gt, spacing=spacing, brain=brain, geometry=geometry), item


def _untimed(_stage: str) -> Any:
    return nullcontext()


def _auto_brain(hu: np.ndarray, spacing: Any) -> np.ndarray:
    from ..data import brain as brain_mod

    return np.asarray(brain_mod.brain_mask(hu, spacing))
