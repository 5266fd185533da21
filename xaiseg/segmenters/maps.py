"""A segmenter as a source of maps, with the same shape contract as ``Attribution.attribute``.

``SegmenterMaps(loaded).attribute(images, subjects)``: images are (B, C, S, S) windowed slices
in [0, 1] as ``loaded.preprocessor`` makes them (before normalisation: applied here, as in
training); the result is (B, S, S) float32 lesion probabilities in [0, 1] on the images'
device. Each slice is scored by the models that never saw its subject (with ``--folds``: its
fold's model); a subject every model saw is a one-line :class:`~.folds.LeakageError`.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ConfigError
from .checkpoint import LoadedSegmenter
from .folds import unseen_models
from .lesion import lesion_probability


class SegmenterMaps:
    """Probability maps of a loaded segmenter; ``name`` is its architecture (``unet``,
    ``swin-unetr``) unless given, for rows of a benchmark table."""

    # The maps are probabilities (0.5 means "as likely lesion as not"), unlike attribution maps,
    # whose scale means nothing until min-max normalised: a runner may threshold them as they are.
    probabilities = True

    def __init__(self, segmenter: LoadedSegmenter, name: str | None = None) -> None:
        self.segmenter = segmenter
        self.name = name or segmenter.architecture

    @property
    def preprocessor(self):
        return self.segmenter.preprocessor

    def attribute(self, images: torch.Tensor, subjects: Sequence[str]) -> torch.Tensor:
        seg = self.segmenter
        if images.ndim != 4 or tuple(images.shape[1:]) != (self.preprocessor.channels, *self.preprocessor.input_size):
            raise ConfigError(f"segmenter {self.name!r} takes (B, {self.preprocessor.channels}, {seg.input_size}, "
                              f"{seg.input_size}) slices made by its own preprocessor, got {tuple(images.shape)}")
        if len(subjects) != len(images):
            raise ConfigError(f"{len(images)} images but {len(subjects)} subject ids")
        # the guard first, for every slice, so a leaking batch computes nothing
        chosen = [tuple(unseen_models(seg.members, str(s))) for s in subjects]
        x = seg.normalize(images.to(seg.device).float())
        out = torch.empty(images.shape[0], *images.shape[2:], dtype=torch.float32, device=seg.device)
        with torch.no_grad():
            for group in sorted(set(chosen)):
                rows = [i for i, c in enumerate(chosen) if c == group]
                probs = [lesion_probability(seg.members[g].model(x[rows])) for g in group]
                out[rows] = torch.stack(probs).mean(0)  # models that all never saw the subject: their mean
        return out.clamp_(0.0, 1.0).to(images.device)

    __call__ = attribute
