"""Hugging Face classifiers for ``xaiseg train`` (the ``[hf]`` extra), built from a config.

A checkpoint records the model as ``hf:<transformers class>`` (e.g. ``hf:ViTForImageClassification``)
in the field timm models fill with their timm name, plus the config's keyword arguments; it
rebuilds through :func:`build_hf` with no download. The network is wrapped in
:class:`~xaiseg.adapters.hf.HFLogits` (its forward returns the logits), so training, the saved
state dict (keys ``net.…``) and every method see an ordinary classifier.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from ..errors import ConfigError

PREFIX = "hf:"
# the Hugging Face families xaiseg can explain: model class -> its config class
FAMILIES = {"ViTForImageClassification": "ViTConfig", "SwinForImageClassification": "SwinConfig"}
ALIASES = {"hf-vit": PREFIX + "ViTForImageClassification", "hf-swin": PREFIX + "SwinForImageClassification"}


def is_hf_name(name: str) -> bool:
    return name.startswith(PREFIX) or name in ALIASES


def canonical(name: str) -> str:
    """``hf-vit`` -> ``hf:ViTForImageClassification``; refuses a class xaiseg cannot explain."""
    full = ALIASES.get(name, name)
    if full[len(PREFIX):] not in FAMILIES:
        raise ConfigError(f"unknown Hugging Face model {name!r}: use hf-vit, hf-swin or "
                          f"{', '.join(PREFIX + c for c in FAMILIES)}")
    return full


def build_hf(name: str, kwargs: Mapping[str, Any], num_classes: int, in_chans: int, try_forward: bool = True) -> nn.Module:
    """The wrapped Hugging Face classifier ``name`` built from ``kwargs`` (its config's arguments);
    ``try_forward``: run it once on a blank image (off when rebuilding a checkpoint that trained)."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"{name} needs the transformers package: pip install \"xaiseg[hf]\"") from None
    from ..adapters.hf import HFLogits

    cls_name = canonical(name)[len(PREFIX):]
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(kwargs).items()}
    for k in ("num_labels", "num_channels"):
        kw.pop(k, None)
    config_cls = getattr(transformers, FAMILIES[cls_name])
    _check_config_keys(config_cls, kw)
    try:
        config = config_cls(num_labels=num_classes, num_channels=in_chans, **kw)
        if cls_name == "SwinForImageClassification":
            _check_swin_windows(config)
        net = getattr(transformers, cls_name)(config)
        if try_forward:
            _dry_run(net, in_chans)
    except (TypeError, ValueError, AssertionError, RuntimeError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot build {cls_name} with {kw}: {msg}") from None
    return HFLogits(net)


def _check_config_keys(config_cls: Any, kw: Mapping[str, Any]) -> None:
    """transformers' configs keep an unknown keyword as a plain attribute, so a misspelt key
    (``hiden_size``, timm's ``img_size``) would silently build the default-sized model; refuse it."""
    import difflib

    known = set(config_cls().to_dict())
    for key in kw:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"unknown {config_cls.__name__} argument {key!r} in the model kwargs{hint}; "
                              f"see transformers' {config_cls.__name__} for the accepted names")


def _dry_run(net: nn.Module, in_chans: int) -> None:
    """One forward on a blank image: transformers accepts some configs it cannot run (e.g. a
    hidden size that is no multiple of the heads), which would otherwise fail at the first step."""
    import torch

    size = net.config.image_size
    h, w = (size, size) if isinstance(size, int) else size
    was = net.training
    net.eval()
    with torch.no_grad():
        net(pixel_values=torch.zeros(1, in_chans, int(h), int(w)))
    net.train(was)


def _check_swin_windows(config: Any) -> None:
    """transformers' Swin (5.x) fails in its forward when a stage's grid is smaller than the
    window (a shape error deep in the attention mask); refuse such a config up front."""
    grid = int(config.image_size) // int(config.patch_size)
    for stage in range(len(config.depths)):
        if grid < int(config.window_size):
            raise ValueError(f"stage {stage}'s {grid}×{grid} grid is smaller than window_size {config.window_size}, "
                             "which transformers' Swin cannot run; use a larger image_size or fewer stages")
        grid //= 2


def hf_input_size(model: nn.Module) -> int | None:
    """The square input size of a wrapped Hugging Face model (None for other models)."""
    net = getattr(model, "net", None)
    size = getattr(getattr(net, "config", None), "image_size", None)
    if size is None or not type(net).__module__.startswith("transformers."):
        return None
    h, w = (size, size) if isinstance(size, int) else size
    if h != w:
        raise ConfigError(f"only square inputs are supported, the model takes {h}×{w}")
    return int(h)
