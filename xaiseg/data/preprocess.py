"""From a CT slice in HU to a model input, and from a model-sized map back to the slice.

- :func:`window_channels`: one channel per (centre, width) HU window, each clipped to
  ``[centre - width/2, centre + width/2]`` and scaled to [0, 1].
- :class:`Preprocessor`: resize the HU slice (bilinear, ``align_corners=False``, no antialias;
  masks nearest), centre-crop or pad to the model's square input (padding is air, -1000 HU,
  for the image and 0 for masks), then window. The :class:`Geometry` of that mapping is
  returned so a map computed on the model input can be put back on the original slice grid
  (:meth:`Geometry.to_original`), e.g. to score it against the mask or save it as NIfTI.

Resizing happens in HU, before windowing: one channel to resize instead of C.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .constants import DEFAULT_WINDOWS

AIR_HU = -1000.0


def _windows(windows: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    out = []
    for w in windows:
        c, width = (float(v) for v in w)
        if not width > 0:
            raise ValueError(f"window width must be positive, got {w}")
        out.append((c, width))
    if not out:
        raise ValueError("need at least one window")
    return out


def window_channels(hu, windows: Sequence[Sequence[float]] = DEFAULT_WINDOWS):
    """Stack windowed copies of ``hu`` along a new channel axis.

    ``hu`` is (H, W) or (B, H, W), numpy or torch; the result is (C, H, W) or (B, C, H, W)
    float32 of the same kind, each channel ``clip((hu - lo) / width, 0, 1)`` with
    ``lo = centre - width / 2``.
    """
    ws = _windows(windows)
    if isinstance(hu, torch.Tensor):
        x = hu.float()
        chans = [((x - (c - w / 2)) / w).clamp_(0.0, 1.0) for c, w in ws]
        return torch.stack(chans, dim=-3)
    x = np.asarray(hu, dtype=np.float32)
    chans = [np.clip((x - np.float32(c - w / 2)) / np.float32(w), 0.0, 1.0) for c, w in ws]
    return np.stack(chans, axis=-3).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Geometry:
    """How an original (H, W) slice became the (S, S) model input.

    The slice was resized to ``resized`` (rows, cols); the output pixel (y, x) is the resized
    pixel (y + top, x + left) -- negative offsets mean padding.
    """

    original: tuple[int, int]
    resized: tuple[int, int]
    top: int
    left: int
    output: tuple[int, int]

    def to_original(self, map_2d, mode: str = "bilinear"):
        """Put a map on the model-input grid, (S, S) or (B, S, S), back on the original grid.

        The part of the resized slice that was cropped away is 0. Returns the same kind
        (numpy/torch) as given, float32. ``mode="nearest"`` for label maps.
        """
        is_np = not isinstance(map_2d, torch.Tensor)
        m = torch.as_tensor(np.asarray(map_2d) if is_np else map_2d).float()
        squeeze = m.ndim == 2
        if squeeze:
            m = m[None]
        if tuple(m.shape[-2:]) != self.output:
            raise ValueError(f"map of shape {tuple(m.shape[-2:])} does not match the model input {self.output}")
        canvas = _crop_or_pad(m, self.resized, -self.top, -self.left, 0.0)
        out = _resize(canvas[:, None], self.original, mode)[:, 0]
        if squeeze:
            out = out[0]
        return out.cpu().numpy() if is_np else out

    def to_input(self, map_2d, mode: str = "bilinear"):
        """The forward mapping (original grid -> model input), for maps or masks."""
        is_np = not isinstance(map_2d, torch.Tensor)
        m = torch.as_tensor(np.asarray(map_2d) if is_np else map_2d).float()
        squeeze = m.ndim == 2
        if squeeze:
            m = m[None]
        out = _crop_or_pad(_resize(m[:, None], self.resized, mode)[:, 0], self.output, self.top, self.left, 0.0)
        if squeeze:
            out = out[0]
        return out.cpu().numpy() if is_np else out


class Preprocessed(NamedTuple):
    image: torch.Tensor  # (C, S, S) or (B, C, S, S) float32 in [0, 1]
    mask: torch.Tensor | None  # (S, S) uint8 0/1
    brain: torch.Tensor | None  # (S, S) uint8 0/1
    geometry: Geometry


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """(N, 1, H, W) float -> (N, 1, h, w)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)


def _crop_or_pad(x: torch.Tensor, out: tuple[int, int], top: int, left: int, fill: float) -> torch.Tensor:
    """(N, H, W): output pixel (y, x) = input pixel (y + top, x + left), ``fill`` outside."""
    n, h, w = x.shape
    res = torch.full((n, out[0], out[1]), fill, dtype=x.dtype, device=x.device)
    y0, y1 = max(0, -top), min(out[0], h - top)
    x0, x1 = max(0, -left), min(out[1], w - left)
    if y1 > y0 and x1 > x0:
        res[:, y0:y1, x0:x1] = x[:, y0 + top : y1 + top, x0 + left : x1 + left]
    return res


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


class Preprocessor:
    """HU slice -> windowed, resized model input (plus masks and the geometry).

    ``input_size``: the model's input (int for square, or (rows, cols)). The slice is resized,
    then centre-cropped or padded (with air) to ``input_size``:

    - ``resize=None`` (default): the whole slice fits, aspect ratio kept — its longer side
      becomes the input's, the shorter one is padded (a square slice is simply resized);
    - ``resize=N`` (int): its *shorter* side becomes N, aspect ratio kept, as torchvision's
      ``Resize(N)`` (longer side ``int(N · long / short)``); HGI-SAM's recipe is
      ``Preprocessor(384, resize=422)``: resize to 422, centre-crop 384;
    - ``resize=(rows, cols)``: exactly that size (the aspect ratio changes if it says so).
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        windows: Sequence[Sequence[float]] = DEFAULT_WINDOWS,
        resize: int | Sequence[int] | None = None,
    ) -> None:
        self.input_size = _pair(input_size)
        self.resize: int | tuple[int, int] | None = (
            None if resize is None else int(resize) if isinstance(resize, (int, np.integer)) else _pair(resize)
        )
        self.windows = tuple(_windows(windows))
        sizes = [*self.input_size, *([] if self.resize is None else _pair(self.resize))]
        if min(sizes) < 1:
            raise ValueError("sizes must be positive")

    @property
    def channels(self) -> int:
        return len(self.windows)

    def resized_shape(self, original: tuple[int, int]) -> tuple[int, int]:
        """The (rows, cols) an original slice is resized to before the crop or pad."""
        h, w = int(original[0]), int(original[1])
        sh, sw = self.input_size
        if isinstance(self.resize, tuple):
            return self.resize
        if self.resize is None:  # fit: the limiting side fills the input
            if h * sw >= w * sh:
                return sh, max(1, round(w * sh / h))
            return max(1, round(h * sw / w)), sw
        n = self.resize  # torchvision Resize(int): shorter side to n, longer side truncated
        if h <= w:
            return n, int(n * w / h)
        return int(n * h / w), n

    def geometry(self, original: tuple[int, int]) -> Geometry:
        rh, rw = self.resized_shape(original)
        sh, sw = self.input_size
        return Geometry(tuple(int(v) for v in original), (rh, rw), (rh - sh) // 2, (rw - sw) // 2, (sh, sw))  # type: ignore[arg-type]

    def __call__(self, hu, mask=None, brain=None) -> Preprocessed:
        """``hu`` (H, W) or (B, H, W); masks (H, W) / (B, H, W), any value > 0 counts."""
        x = torch.as_tensor(np.asarray(hu) if not isinstance(hu, torch.Tensor) else hu).float()
        squeeze = x.ndim == 2
        if squeeze:
            x = x[None]
        if x.ndim != 3:
            raise ValueError(f"expected an (H, W) or (B, H, W) slice, got shape {tuple(x.shape)}")
        geo = self.geometry(tuple(x.shape[-2:]))
        x = _crop_or_pad(_resize(x[:, None], geo.resized, "bilinear")[:, 0], geo.output, geo.top, geo.left, AIR_HU)
        image = window_channels(x, self.windows)
        if squeeze:
            image = image[0]
        outs = []
        for m in (mask, brain):
            if m is None:
                outs.append(None)
                continue
            t = torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m)
            t = (t > 0).float()
            if t.ndim == 2:
                t = t[None]
            t = _crop_or_pad(_resize(t[:, None], geo.resized, "nearest")[:, 0], geo.output, geo.top, geo.left, 0.0)
            t = t.to(torch.uint8)
            outs.append(t[0] if squeeze else t)
        return Preprocessed(image, outs[0], outs[1], geo)

    def __repr__(self) -> str:
        return f"Preprocessor(input_size={self.input_size}, windows={self.windows}, resize={self.resize})"
