"""Checkpoint directories: ``model.safetensors`` + ``config.json``, and ``xaiseg.load_model``.

The config holds everything needed to rebuild the exact network and its input pipeline on any
device: the timm name and constructor kwargs, the task and class names, the explained target
index, CT windows, input size and normalisation, plus the xaiseg version and training metrics.
Weights are stored with safetensors (no pickle). Plain PyTorch state dicts (``--init``) are read
with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import CheckpointError
from ..output.folder import Owner, json_record
from .presets import build_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "xaiseg-checkpoint"
FORMAT_VERSION = 1
SEGMENTER_KIND = "segmenter"  # config.json "kind" of a segmenter; classifiers have none
# a folder holding a checkpoint config is `xaiseg train`'s own (runs older than the .xaiseg.json marker)
TRAIN_OUTPUT = Owner("xaiseg train", (json_record(CONFIG_FILE, "format", FORMAT),))
# Buffers timm recomputes from the config; old checkpoints may contain them.
_DERIVED_BUFFERS = ("relative_position_index", "attn_mask")


def jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def save_checkpoint(directory: str | os.PathLike, model: nn.Module, config: Mapping[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    Both files are written to temporary names first and renamed (:mod:`xaiseg.output.atomic`), so a
    crash or a full disk never leaves a half-written checkpoint behind; an ``OSError`` is one
    :class:`~xaiseg.errors.OutputError` line naming the file.
    """
    from ..output.atomic import save_safetensors, write_text

    out = Path(directory)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, "xaiseg_version": __version__, **jsonable(dict(config))}
    text = json.dumps(cfg, indent=2)  # a value JSON cannot hold fails before anything is written
    save_safetensors(state, out / WEIGHTS_FILE, metadata={"format": FORMAT})
    write_text(out / CONFIG_FILE, text + "\n")
    return out


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``config.json`` of a classifier checkpoint directory."""
    cfg = read_checkpoint_json(directory)
    path = Path(directory) / CONFIG_FILE
    if cfg.get("kind") == SEGMENTER_KIND:
        raise CheckpointError(f"{str(directory)!r} is a segmenter checkpoint (xaiseg train --task segmentation), not a "
                              "classifier; pass it as --segmenter, or give a classifier to --checkpoint")
    check_config(cfg, str(path))
    return cfg


def read_checkpoint_json(directory: str | os.PathLike) -> dict[str, Any]:
    """Read ``config.json`` of any xaiseg checkpoint directory (classifier or segmenter) and
    check that it is one."""
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"checkpoint {str(d)!r} is not a directory (expected {WEIGHTS_FILE} + {CONFIG_FILE})")
    path = d / CONFIG_FILE
    if not path.is_file():
        if path.exists() or path.is_symlink():  # a FIFO would block read_text forever
            raise CheckpointError(f"{str(path)!r} is {_kind(path)}, not a regular file")
        raise CheckpointError(f"{str(d)!r} has no {CONFIG_FILE}; is it an xaiseg checkpoint (written by `xaiseg train`)?")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an xaiseg checkpoint config (no \"format\": \"{FORMAT}\")")
    return cfg


_REQUIRED = ("timm_name", "model_kwargs", "num_classes", "task", "input_size", "windows", "target_index")


def _int_field(cfg: Mapping[str, Any], key: str, lo: int, hi: int | None = None) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{key} is {v!r}; it must be an integer {span}")
    return v


def _finite_list(value: Any, key: str, n: int | None = None) -> list[float]:
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and math.isfinite(v) for v in value)
    if not ok or (n is not None and len(value) != n):
        raise ValueError(f"{key} is {value!r}; it must be a list of {n or 'some'} finite numbers")
    return [float(v) for v in value]


def check_config(cfg: Mapping[str, Any], where: str) -> None:
    """Every field ``load_model`` and the methods use, checked once: a config edited by hand
    or written by another tool fails here in one line, not as a KeyError, an IndexError or a
    library assertion later (``where`` names the file in the message)."""
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise CheckpointError(f"{where} lacks {', '.join(missing)}; is it a config written by `xaiseg train`?")
    try:
        if "format_version" in cfg:  # a newer layout may mean other things by the same fields
            if _int_field(cfg, "format_version", 1) > FORMAT_VERSION:
                raise ValueError(f"format_version is {cfg['format_version']}, newer than this xaiseg reads "
                                 f"({FORMAT_VERSION}); upgrade xaiseg to load it")
        if not isinstance(cfg["timm_name"], str) or not isinstance(cfg["model_kwargs"], dict):
            raise ValueError("timm_name must be a string and model_kwargs a JSON object")
        if cfg["task"] not in ("binary", "subtypes"):
            raise ValueError(f"task is {cfg['task']!r}; it must be binary or subtypes")
        n = _int_field(cfg, "num_classes", 1)
        _int_field(cfg, "target_index", 0, n - 1)
        _int_field(cfg, "input_size", 1)
        windows = cfg["windows"]
        if not isinstance(windows, (list, tuple)) or not windows:
            raise ValueError(f"windows is {windows!r}; it must be a list of [centre, width] pairs in HU")
        for w in windows:
            if _finite_list(w, "a window", 2)[1] <= 0:
                raise ValueError(f"window {w!r} has a width <= 0; widths must be > 0 HU")
        if "in_chans" in cfg and _int_field(cfg, "in_chans", 1) != len(windows):
            raise ValueError(f"in_chans is {cfg['in_chans']} but there are {len(windows)} windows (one channel each)")
        names = cfg.get("class_names")
        if names is not None and (not isinstance(names, list) or not all(isinstance(c, str) for c in names)):
            raise ValueError(f"class_names is {names!r}; it must be a list of strings")
        if names is not None and len(names) != n:
            raise ValueError(f"class_names has {len(cfg['class_names'])} names for num_classes {n}")
        if cfg.get("resize") is not None:
            _int_field(cfg, "resize", 1)  # as `xaiseg train --resize` allows
        norm = cfg.get("normalization")
        if norm:
            if not isinstance(norm, dict) or "mean" not in norm or "std" not in norm:
                raise ValueError("normalization must be {\"mean\": [...], \"std\": [...]}")
            _finite_list(norm["mean"], "normalization mean", len(windows))
            if min(_finite_list(norm["std"], "normalization std", len(windows))) <= 0:
                raise ValueError("normalization std must be > 0")
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors file, a checkpoint directory or a PyTorch file.

    PyTorch files are loaded with ``weights_only=True``; common wrappers (``{"model": ...}``,
    ``{"state_dict": ...}``, a ``module.`` prefix from DataParallel) are unwrapped.
    """
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_FILE
    if not p.is_file():
        if p.exists() or p.is_symlink():
            raise CheckpointError(f"weights file {str(p)!r} is {_kind(p)}, not a regular file")
        raise CheckpointError(f"weights file {str(p)!r} does not exist")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
            raise CheckpointError(f"{str(p)!r} is not a readable safetensors file ({_first_line(exc)})") from None
    with open(p, "rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save: a zip, or a legacy pickle
        raise CheckpointError(f"{str(p)!r} is not a weights file (safetensors, or PyTorch's torch.save)")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        text = str(exc)
        if "Unsupported global" in text:
            why = "it holds pickled Python objects besides tensors; save model.state_dict() or safetensors instead"
        else:
            why = _first_line(exc)
        raise CheckpointError(f"{str(p)!r} is not a PyTorch state dict that loads with weights_only=True ({why})") from None
    for key in ("model", "state_dict", "model_state", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{str(p)!r} does not hold a state dict (a mapping of names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _kind(path: Path) -> str:
    from ..data.files import file_kind

    return file_kind(path)


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0][:200] if s else type(exc).__name__


def _summarise(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > limit else "")


def load_weights_into(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, allow_new_head: bool = False
) -> list[str]:
    """Load ``state`` strictly into ``model``; mismatches raise CheckpointError listing the keys.

    With ``allow_new_head`` (fine-tuning from another task or from ImageNet weights), classifier
    weights whose shape differs are skipped and left freshly initialised; their names are returned.
    """
    state = {k: v for k, v in state.items() if not k.endswith(_DERIVED_BUFFERS)}
    own = model.state_dict()
    skipped: list[str] = []
    if allow_new_head:
        for k in [k for k in state if k.startswith("head.") and k in own and state[k].shape != own[k].shape]:
            skipped.append(k)
            del state[k]
    missing = sorted(k for k in own if k not in state and k not in skipped)
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys: {_summarise(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_summarise(unexpected)}")
        if wrong:
            parts.append(
                "shape mismatch: "
                + _summarise([f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong], 3)
            )
        raise CheckpointError(f"weights in {source} do not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict({**own, **state} if skipped else state, strict=True)
    return skipped


def init_from(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """``--init``: start from our checkpoint or a state dict of the model's family (timm, or the
    family's original repository).

    The model's adapter converts other layouts (:meth:`~xaiseg.adapters.ModelAdapter.convert_checkpoint`:
    timm's own ``checkpoint_filter_fn`` for Swin V1 / V2 and ViT, which also resizes relative-
    position tables for another window and position embeddings for another input size). A
    classifier head of another size is re-initialised; its key names are returned.
    """
    from ..adapters import get_adapter

    state = read_weights(path)
    try:
        state = get_adapter(model).convert_checkpoint(state)
    except Exception as exc:
        raise CheckpointError(f"cannot convert {str(path)!r} to this model's layout ({_first_line(exc)})") from None
    return load_weights_into(model, state, source=repr(str(path)), allow_new_head=True)


@dataclass
class LoadedModel:
    """A trained classifier ready for inference: the model (eval mode), its config and preprocessing.

    ``preprocessor(hu, mask=None, brain=None)`` windows and resizes one HU slice exactly as in
    training; :meth:`prepare` also applies the stored normalisation and returns a batch tensor on
    the model's device.
    """

    model: nn.Module
    config: dict[str, Any]
    preprocessor: Any
    device: torch.device
    path: Path

    @property
    def task(self) -> str:
        return str(self.config["task"])

    @property
    def target_index(self) -> int:
        """The logit the benchmark explains: class 1 (ICH) for binary, the ``any`` label for subtypes."""
        return int(self.config["target_index"])

    @property
    def class_names(self) -> list[str]:
        return list(self.config["class_names"])

    @property
    def input_size(self) -> int:
        return int(self.config["input_size"])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Apply the stored per-channel normalisation to (B, C, S, S) windowed images in [0, 1]."""
        return normalize(images, self.config.get("normalization"))

    def prepare(self, hu: np.ndarray, mask: np.ndarray | None = None, brain: np.ndarray | None = None):
        """One HU slice -> ((1, C, S, S) normalised tensor on the device, preprocessor outputs)."""
        out = self.preprocessor(hu, mask=mask, brain=brain)
        image = torch.as_tensor(np.ascontiguousarray(out[0]), dtype=torch.float32)[None].to(self.device)
        return self.normalize(image), out

    def detection_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """P(hemorrhage) per image from logits: softmax class 1 (binary) or sigmoid of ``any``."""
        return detection_probability(logits, self.task, self.target_index)


def normalize(images: torch.Tensor, norm: Mapping[str, Any] | None) -> torch.Tensor:
    if not norm:
        return images
    mean = torch.as_tensor(norm["mean"], dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(norm["std"], dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


def detection_probability(logits: torch.Tensor, task: str, target_index: int) -> torch.Tensor:
    """P(hemorrhage) per image from (B, K) logits: the sigmoid of the only logit of a 1-logit
    model (whatever ``target_index`` says: a softmax over one logit is always 1), the softmax
    class ``target_index`` of a binary model, the sigmoid of the ``any`` logit of a multi-label
    (subtype) model."""
    z = logits.float()
    if z.shape[1] == 1:
        return z[:, 0].sigmoid()
    if task == "binary":
        return z.softmax(-1)[:, target_index]
    return z.sigmoid()[:, target_index]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> CUDA if available, else CPU; checks an explicit CUDA request."""
    from ..errors import ConfigError

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:  # "cdua", "cuda:x": torch's own message, as one line
        raise ConfigError(f"--device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu or auto")
    return dev


def load_model(directory: str | os.PathLike, device: str | torch.device | None = None) -> LoadedModel:
    """Rebuild a classifier trained by ``xaiseg train`` from its checkpoint directory.

    Returns a :class:`LoadedModel` whose ``.model`` is in eval mode on ``device`` (default: CUDA if
    available, else CPU). A corrupt or mismatched checkpoint raises :class:`CheckpointError` with
    a one-line message (missing/unexpected keys are listed).
    """
    d = Path(directory)
    cfg = read_config(d)
    dev = resolve_device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = build_model(cfg["timm_name"], cfg["model_kwargs"], int(cfg["num_classes"]), in_chans=int(cfg.get("in_chans", 3)),
                                fresh=False)
        except Exception as exc:
            raise CheckpointError(f"cannot rebuild {cfg['timm_name']} from {str(d / CONFIG_FILE)!r}: {_first_line(exc)}") from None
    built = getattr(getattr(model, "patch_embed", None), "img_size", None)
    built = (built, built) if isinstance(built, int) else tuple(built) if built is not None else None
    if built is not None and built != (int(cfg["input_size"]),) * 2:
        raise CheckpointError(f"{str(d / CONFIG_FILE)!r}: input_size is {cfg['input_size']} but the model it describes "
                              f"takes {built[0]}x{built[1]} (model_kwargs img_size); make them agree")
    load_weights_into(model, read_weights(d / WEIGHTS_FILE), source=repr(str(d / WEIGHTS_FILE)))
    model.to(dev).eval()
    return LoadedModel(model=model, config=cfg, preprocessor=preprocessor_from_config(cfg), device=dev, path=d)


def preprocessor_from_config(cfg: Mapping[str, Any]) -> Any:
    """The training input pipeline a checkpoint config records (classifier or segmenter)."""
    from ..data.preprocess import Preprocessor

    windows = tuple(tuple(float(x) for x in w) for w in cfg["windows"])
    resize = cfg.get("resize")  # absent in checkpoints older than the option: the whole slice fits
    return Preprocessor(int(cfg["input_size"]), windows, resize=None if resize is None else int(resize))
