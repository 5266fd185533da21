"""Named MONAI segmenter configurations and the one place that builds a segmenter from a name.

``--model`` (with ``--task segmentation``) takes a preset name; ``--model-kwargs`` (JSON)
overrides the preset's MONAI constructor arguments. A checkpoint stores the architecture, the
full kwargs and the input size, never the preset name alone, so it rebuilds the same network
even if a preset changes later.

Both architectures are 2-D (``spatial_dims=2``), take one channel per CT window and output
``out_channels`` lesion logits: 1 (sigmoid, the default) or 2 (softmax, background first).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..training.presets import PRESETS as CLASSIFIER_PRESETS

ARCHITECTURES = ("unet", "swin-unetr")
LESION_PRIOR = 0.01  # share of lesion pixels the output layer starts at (see _start_at_prior)


@dataclass(frozen=True)
class SegmenterPreset:
    """A named MONAI configuration: architecture, constructor kwargs, input size and resize."""

    name: str
    architecture: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_size: int = 128
    description: str = ""
    # as the classifier presets': shorter side resized to input x ratio, then centre-cropped
    resize_ratio: float | None = None


# Why these numbers (docs/training.md, "Fully supervised baselines"): the CPU presets take the
# tiny classifier's 128 px input and are the smallest nets that learn the phantom's lesions in
# minutes on 2 cores; the GPU presets are the published sizes at the paper's 384 px input,
# resized like the paper classifier (422 then centre crop 384).
_PAPER_RESIZE = CLASSIFIER_PRESETS["paper"].resize_ratio
SEGMENTER_PRESETS: dict[str, SegmenterPreset] = {
    "unet": SegmenterPreset(
        "unet", "unet", dict(channels=(8, 16, 32, 64), strides=(2, 2, 2), num_res_units=2),
        128, "CPU-sized MONAI UNet: 128 px, channels 8-16-32-64, 2 residual units (~0.1 M parameters)"),
    "swin-unetr": SegmenterPreset(
        "swin-unetr", "swin-unetr",
        dict(feature_size=12, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4),
        128, "CPU-sized MONAI SwinUNETR: 128 px, feature size 12, window 4, depths 2-2-2-2 (~1.6 M parameters)"),
    "unet-paper": SegmenterPreset(
        "unet-paper", "unet", dict(channels=(64, 128, 256, 512, 1024), strides=(2, 2, 2, 2), num_res_units=2),
        384, "GPU: MONAI UNet at the original U-Net widths 64-1024, 384 px (~26 M parameters)",
        _PAPER_RESIZE),
    "swin-unetr-paper": SegmenterPreset(
        "swin-unetr-paper", "swin-unetr",
        dict(feature_size=48, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), window_size=7),
        384, "GPU: MONAI SwinUNETR as published (feature size 48, heads 3-6-12-24, window 7), 384 px (~25 M parameters)",
        _PAPER_RESIZE),
}


def default_segmenter_name(device: str) -> str:
    """The segmenter used when ``--model`` is not given: the published U-Net on CUDA, else ``unet``."""
    return "unet-paper" if str(device).startswith("cuda") else "unet"


def resolve_segmenter(name: str, model_kwargs: Mapping[str, Any] | None = None) -> tuple[SegmenterPreset, dict[str, Any]]:
    """A preset name plus overrides -> (preset, merged MONAI kwargs); one-line error otherwise."""
    if name not in SEGMENTER_PRESETS:
        raise ConfigError(f"unknown segmenter {name!r} for --task segmentation: use one of {', '.join(SEGMENTER_PRESETS)}")
    preset = SEGMENTER_PRESETS[name]
    return preset, {**dict(preset.kwargs), **dict(model_kwargs or {})}


def input_multiple(architecture: str, kwargs: Mapping[str, Any]) -> int:
    """The number the input size must be a multiple of: the UNet's total stride, or
    SwinUNETR's patch_size**5 (MONAI checks this in forward; we check before training)."""
    if architecture == "unet":
        return math.prod(int(s) for s in kwargs.get("strides", ()))
    return int(kwargs.get("patch_size", 2)) ** 5


def build_segmenter(architecture: str, kwargs: Mapping[str, Any], in_channels: int, out_channels: int,
                    input_size: int) -> nn.Module:
    """Create the 2-D MONAI network; its constructor errors become one-line ConfigErrors."""
    from monai.networks.nets import SwinUNETR, UNet

    if architecture not in ARCHITECTURES:
        raise ConfigError(f"unknown segmenter architecture {architecture!r}: use {' or '.join(ARCHITECTURES)}")
    if out_channels not in (1, 2):
        raise ConfigError(f"a segmenter outputs 1 (sigmoid) or 2 (softmax) lesion channels, got out_channels={out_channels}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(kwargs).items()}
    for k in ("spatial_dims", "in_channels", "out_channels", "img_size"):
        kw.pop(k, None)
    try:
        multiple = input_multiple(architecture, kw)
        if input_size % multiple:
            raise ValueError(f"the input size {input_size} px is not a multiple of {multiple}; pass --image-size")
        cls = UNet if architecture == "unet" else SwinUNETR
        if cls is SwinUNETR and "img_size" in inspect.signature(SwinUNETR.__init__).parameters:
            kw["img_size"] = input_size  # older MONAI releases require it
        model = cls(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, **kw)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot build a {architecture} segmenter with {kw}: {msg}") from None
    _start_at_prior(model, out_channels)
    return model


def _start_at_prior(model: nn.Module, out_channels: int) -> None:
    """Start the output layer at the lesion-pixel prior instead of p = 0.5 everywhere.

    Why: hemorrhage is ~0.1-1 % of a slice's pixels; from p = 0.5 Adam needs thousands of steps
    (the bias moves ~lr per step) just to learn "mostly background", during which the Dice term
    sees no lesion. The prior-logit bias (RetinaNet's trick) skips that phase.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd) and m.out_channels == out_channels]
    if not convs or convs[-1].bias is None:
        return
    bias = convs[-1].bias  # the output layer: MONAI registers it last in both architectures
    logit = math.log(LESION_PRIOR / (1.0 - LESION_PRIOR))
    with torch.no_grad():
        bias.copy_(torch.tensor([logit]) if out_channels == 1 else torch.tensor([0.0, logit]))
