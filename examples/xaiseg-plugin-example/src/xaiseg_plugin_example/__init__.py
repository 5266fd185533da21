"""An example third-party xaiseg method: "bright is salient".

Fresh blood is brighter than brain on CT, so the image itself is a naive localisation baseline:
the map is the mean over input channels, min–max normalised per image. A learned explanation
that does not beat it has not learned more than contrast.

Everything a plugin needs is here: subclass :class:`xaiseg.Attribution`, set the metadata,
implement ``_attribute`` returning (B, H, W) maps, and register the class under the
``xaiseg.methods`` entry-point group in your package's pyproject.toml.
"""
from __future__ import annotations

from typing import Any

import torch

import xaiseg


class IntensityPrior(xaiseg.Attribution):
    """Input intensity (mean over channels), min–max per image."""

    name = "intensity-prior"
    description = "Example plugin (xaiseg-plugin-example): mean input intensity over channels, min–max per image"
    architectures = ()  # model-free: any classifier
    needs_gradients = False

    def __init__(self, model: Any, channel: int | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        self.channel = channel

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        img = inputs.mean(dim=1) if self.channel is None else inputs[:, self.channel]
        return xaiseg.minmax_normalize(img)
