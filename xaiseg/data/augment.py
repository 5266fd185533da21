"""Training augmentation applied identically to images and masks (torch, batched).

Per sample: a left-right flip (probability ``flip_p``), a small random affine (rotation,
isotropic scale, translation) and, for the image only, additive Gaussian noise. The geometric
part is one ``affine_grid``/``grid_sample`` per batch: bilinear for images, nearest for masks,
with the *same* sampling grid, so a mask stays on its lesion.

Apply it to windowed images (values in [0, 1]): pixels moved in from outside the slice get
``fill`` (default 0, the bottom of every window, i.e. air).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Augment:
    """``Augment(...)(image, mask=None) -> (image, mask)`` for (B, C, H, W) / (B, H, W) tensors.

    Unbatched (C, H, W) / (H, W) inputs are accepted too. ``generator`` (a ``torch.Generator``)
    makes the draws reproducible.
    """

    def __init__(
        self,
        flip_p: float = 0.5,
        rotate_deg: float = 10.0,
        scale: float = 0.1,
        translate: float = 0.05,
        noise_std: float = 0.0,
        fill: float = 0.0,
    ) -> None:
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p}")
        if rotate_deg < 0 or scale < 0 or translate < 0 or noise_std < 0:
            raise ValueError("rotate_deg, scale, translate and noise_std must be >= 0")
        self.flip_p, self.rotate_deg, self.scale = float(flip_p), float(rotate_deg), float(scale)
        self.translate, self.noise_std, self.fill = float(translate), float(noise_std), float(fill)

    def sample_theta(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """(n, 2, 3) affine matrices in ``affine_grid``'s normalised output->input coordinates."""

        def u(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=generator)

        ang = u(-1, 1) * math.radians(self.rotate_deg)
        s = 1.0 + u(-1, 1) * self.scale
        flip = torch.where(torch.rand(n, generator=generator) < self.flip_p, -1.0, 1.0)
        tx, ty = u(-1, 1) * 2 * self.translate, u(-1, 1) * 2 * self.translate
        cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * flip, -sin, tx
        theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * flip, cos, ty
        return theta.to(device) if device is not None else theta

    def __call__(
        self,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        theta: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        unbatched = image.ndim == 3
        x = image[None] if unbatched else image
        if x.ndim != 4:
            raise ValueError(f"image must be (B, C, H, W) or (C, H, W), got shape {tuple(image.shape)}")
        n = x.shape[0]
        if theta is None:
            theta = self.sample_theta(n, generator)
        theta = theta.to(device=x.device, dtype=torch.float32)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        xf = x.float()
        out = F.grid_sample(xf - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + self.fill
        if self.noise_std > 0:
            noise = torch.randn(out.shape, generator=generator).to(out.device)
            out = out + self.noise_std * noise
        out = out.to(image.dtype) if image.is_floating_point() else out
        m_out = None
        if mask is not None:
            if unbatched:
                m = mask.reshape(1, -1, *mask.shape[-2:])
            else:
                m = mask[:, None] if mask.ndim == 3 else mask
            if m.ndim != 4 or m.shape[0] != n or tuple(m.shape[-2:]) != tuple(x.shape[-2:]):
                raise ValueError(f"mask of shape {tuple(mask.shape)} does not match image {tuple(image.shape)}")
            mg = F.grid_sample(m.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
            m_out = mg.reshape(mask.shape).to(mask.dtype)
        return (out[0] if unbatched else out), m_out
