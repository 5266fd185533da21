"""Fully supervised baselines: 2-D MONAI segmenters (UNet, SwinUNETR) trained on the masks.

Library use::

    from xaiseg.segmenters import SegmentationConfig, train_segmenter, load_segmenter, SegmenterMaps
    train_segmenter(SegmentationConfig(out="runs/unet", data="/tmp/ph", model="unet", folds=3))
    maps = SegmenterMaps(load_segmenter("runs/unet"))
    probs = maps.attribute(images, subjects)   # (B, S, S) float32 in [0, 1]

Every subject's map comes from a model that never saw it (:mod:`.folds`); see docs/training.md,
"Fully supervised baselines".
"""
from __future__ import annotations

from .checkpoint import LoadedSegmenter, SegmenterModel, load_segmenter
from .config import SegmentationConfig
from .folds import LeakageError, plan_folds
from .lesion import lesion_probability, segmentation_loss
from .maps import SegmenterMaps
from .presets import SEGMENTER_PRESETS, SegmenterPreset, build_segmenter, resolve_segmenter
from .train import SegmenterResult, train_segmenter


def segmenter_for_subject(segmenter: LoadedSegmenter, subject: str) -> list[SegmenterModel]:
    """The models of ``segmenter`` allowed to score ``subject``: those that never saw it (with
    ``--folds``, the one whose fold held it out). A subject every model saw raises
    :class:`LeakageError` naming the subject and the models."""
    return segmenter.models_for(subject)


__all__ = [
    "SEGMENTER_PRESETS",
    "LeakageError",
    "LoadedSegmenter",
    "SegmentationConfig",
    "SegmenterMaps",
    "SegmenterModel",
    "SegmenterPreset",
    "SegmenterResult",
    "build_segmenter",
    "lesion_probability",
    "load_segmenter",
    "plan_folds",
    "resolve_segmenter",
    "segmentation_loss",
    "segmenter_for_subject",
    "train_segmenter",
]
