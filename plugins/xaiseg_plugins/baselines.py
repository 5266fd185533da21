"""Model-free reference maps (``centre-prior``, ``random``): the floor a benchmark row must beat.

Neither looks at the model or the image content, so they run on any architecture
(``architectures = ()``) and without gradients. A method that scores no better than these has
learned nothing about where the lesion is.
"""
from __future__ import annotations

from typing import Any

import torch

from xaiseg import Attribution, minmax_normalize
from xaiseg.errors import ConfigError


class CentrePrior(Attribution):
    """A centred isotropic Gaussian, the same for every image."""

    name = "centre-prior"
    description = "Model-free baseline: centred Gaussian exp(−d²/2σ²), σ = sigma·min(H, W) (default 0.25)"
    architectures = ()
    needs_gradients = False

    def __init__(self, model: Any, sigma: float = 0.25, **options: Any) -> None:
        super().__init__(model, **options)
        if not sigma > 0:
            raise ConfigError(f"sigma must be > 0 (a fraction of the shorter image side), got {sigma}")
        self.sigma = float(sigma)

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        b, _, h, w = inputs.shape
        # Pixel centres, measured from the image centre in pixels.
        ys = torch.arange(h, device=inputs.device, dtype=torch.float32) - (h - 1) / 2
        xs = torch.arange(w, device=inputs.device, dtype=torch.float32) - (w - 1) / 2
        d2 = ys[:, None] ** 2 + xs[None, :] ** 2
        s = self.sigma * min(h, w)
        g = torch.exp(-d2 / (2 * s * s))
        return minmax_normalize(g.expand(b, h, w))


class RandomMap(Attribution):
    """Uniform noise per pixel, reproducible from ``seed`` and independent of the batch."""

    name = "random"
    description = "Model-free baseline: i.i.d. uniform noise per pixel, seeded (seed, image index in the batch)"
    architectures = ()
    needs_gradients = False

    def __init__(self, model: Any, seed: int = 0, smooth: int = 1, **options: Any) -> None:
        super().__init__(model, **options)
        if int(smooth) < 1:
            raise ConfigError(f"smooth must be a positive integer (block size in pixels), got {smooth}")
        self.seed = int(seed)
        self.smooth = int(smooth)

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        b, _, h, w = inputs.shape
        # One generator per call on the CPU: the same numbers on every device and run. The map of
        # image i depends only on (seed, i), not on the batch size.
        maps = []
        k = self.smooth
        gh, gw = -(-h // k), -(-w // k)
        for i in range(b):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            noise = torch.rand(gh, gw, generator=g)
            maps.append(noise.repeat_interleave(k, 0).repeat_interleave(k, 1)[:h, :w])
        return minmax_normalize(torch.stack(maps).to(inputs.device))
