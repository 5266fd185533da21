"""The montage figures: one reused figure gives each method the picture a figure of its own
gives, and panels drawn at display resolution look like matplotlib's full-resolution drawing."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from xaiseg.benchmark import figures


def _samples(seed: int, size: int = 512, n: int = 3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for k in range(n):
        # smooth images: what the eye compares; the map is zero outside a disc (transparent there)
        hu = -40 + 160 * np.sin(6 * yy + k) * np.cos(5 * xx)
        gt = (yy - 0.4) ** 2 + (xx - 0.5 - 0.05 * k) ** 2 < 0.01
        sal = np.exp(-((yy - 0.45) ** 2 + (xx - 0.5) ** 2) / 0.02) * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2 < 0.16)
        sal = (sal * rng.uniform(0.8, 1.0)).astype(np.float32)
        out.append(({"image": hu, "subject": f"s{k}", "slice": k}, SimpleNamespace(gt=gt), sal, 0.3 + 0.1 * k))
    return out


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_a_reused_figure_draws_what_a_fresh_one_does(tmp_path):
    first, second = _samples(0), _samples(0)
    second = [(item, truth, np.clip(sal[::-1] * 0.9, 0, 1), 0.25) for (item, truth, sal, _t) in first]
    together = figures.overlay_montages({"a": first, "b": second, "none": []}, tmp_path / "together")
    assert sorted(together) == ["a", "b"]  # a method without positive slices has no montage
    alone = figures.overlay_montage("b", second, tmp_path / "alone")
    assert np.array_equal(_pixels(together["b"]), _pixels(alone))  # nothing of "a" is left on "b"
    assert not np.array_equal(_pixels(together["a"]), _pixels(together["b"]))


def test_display_resolution_looks_like_full_resolution(tmp_path, monkeypatch):
    samples = _samples(1)
    fast = _pixels(figures.overlay_montage("m", samples, tmp_path / "fast"))

    def full_resolution(ax, img, masked_to=None, **kw):  # matplotlib's own resampling of the whole slice
        if masked_to is not None:
            img = np.ma.masked_less_equal(img, masked_to)
        return ax.imshow(img, interpolation="nearest", **kw)

    monkeypatch.setattr(figures, "_show", full_resolution)
    slow = _pixels(figures.overlay_montage("m", samples, tmp_path / "slow"))
    assert fast.shape == slow.shape
    diff = np.abs(fast - slow).max(axis=2)
    assert diff.mean() < 2.0 and (diff > 60).mean() < 0.01, (diff.mean(), (diff > 60).mean())
