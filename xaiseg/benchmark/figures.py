"""The benchmark's figures (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import binarize
from ..output.atomic import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _window(hu: np.ndarray, centre: float = 40.0, width: float = 80.0) -> np.ndarray:
    return np.clip((hu - (centre - width / 2)) / width, 0.0, 1.0)


_DPI = 100  # every figure is saved at this resolution


def overlay_montage(method: str, samples: list[tuple[Any, Any, np.ndarray, float]], out_dir: Path) -> Path:
    """One column per sampled positive slice: top, the CT in brain window with the ground-truth
    contour (green); bottom, the method's map over the CT with its thresholded mask (red) and
    the ground truth (green)."""
    return overlay_montages({method: samples}, out_dir)[method]


def overlay_montages(montage: dict[str, list[tuple[Any, Any, np.ndarray, float]]], out_dir: Path) -> dict[str, Path]:
    """:func:`overlay_montage` of every method. Why one figure for all: the methods' montages
    show the same slices, so the axes, the CT images and the ground-truth contours are drawn
    once and only each method's map, mask and thresholds are drawn on them (was ~0.4 s of axes
    set-up and a contour per slice again for every method)."""
    paths: dict[str, Path] = {}
    canvas: _Montage | None = None
    for method, samples in montage.items():
        if not samples:
            continue
        if canvas is None or not canvas.shows(samples):
            if canvas is not None:
                canvas.close()
            canvas = _Montage(samples)
        paths[method] = canvas.save(method, samples, out_dir)
    if canvas is not None:
        canvas.close()
    return paths


class _Montage:
    """The montage figure of a set of slices; :meth:`save` draws one method's row on it."""

    def __init__(self, samples: list[tuple[Any, Any, np.ndarray, float]]) -> None:
        plt = _plt()
        n = len(samples)
        self.items = [(item, truth) for item, truth, _sal, _t in samples]
        self.fig, self.axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
        self.fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88, wspace=0.04, hspace=0.12)  # tight_layout is slow
        for j, (item, truth) in enumerate(self.items):
            ct = _window(np.asarray(item["image"], dtype=np.float32))
            gt = truth.gt.astype(float)
            for ax in self.axes[:, j]:
                _show(ax, ct, cmap="gray")
                ax.axis("off")
            self.axes[0, j].contour(gt, levels=[0.5], colors="lime", linewidths=0.8)
            self.axes[0, j].set_title(f"{item.get('subject', '')} #{item.get('slice', '')}", fontsize=8)
            # drawn after each method's mask contour (zorder), as when it was added last
            self.axes[1, j].contour(gt, levels=[0.5], colors="lime", linewidths=0.8, zorder=2.5)

    def shows(self, samples: list) -> bool:
        return len(samples) == len(self.items) and all(
            s[0] is item and s[1] is truth for s, (item, truth) in zip(samples, self.items))

    def save(self, method: str, samples: list[tuple[Any, Any, np.ndarray, float]], out_dir: Path) -> Path:
        from .store import safe_name

        drawn = []
        for j, (_item, _truth, sal, t) in enumerate(samples):
            ax = self.axes[1, j]
            # zero (outside the brain mask, or nothing) stays transparent so the CT shows through
            drawn.append(_show(ax, np.asarray(sal), masked_to=0.0, cmap="jet", alpha=0.5, vmin=0, vmax=1))
            pred = binarize(sal, t).astype(float)  # the very mask the row was scored on
            if pred.any() and not pred.all():
                drawn.append(ax.contour(pred, levels=[0.5], colors="red", linewidths=0.8))
            ax.set_title(f"t = {t:.2f}", fontsize=8)
        self.fig.suptitle(f"{method}: ground truth (green), map and mask (red)", fontsize=10)
        path = Path(out_dir) / f"montage-{safe_name(method)}.png"
        save_figure(self.fig, path, dpi=_DPI)
        for artist in drawn:
            artist.remove()
        return path

    def close(self) -> None:
        _plt().close(self.fig)


def _show(ax: Any, img: np.ndarray, masked_to: float | None = None, **kw: Any) -> Any:
    """``imshow`` (nearest) of ``img`` at the resolution it is displayed at: a 512² slice in a
    ~200 px panel is sampled down (nearest, pixel centres, what matplotlib's nearest resampling
    shows) before matplotlib colour-maps and composites it — the same picture at a fraction of
    the cost. The extent stays the full slice's, so contours drawn in slice pixels still fit.
    ``masked_to``: values <= it are transparent."""
    h, w = img.shape[:2]
    box = ax.get_position()
    fw, fh = ax.figure.get_size_inches()
    scale = min(box.width * fw * _DPI / w, box.height * fh * _DPI / h)
    if scale < 1.0:
        rows = ((np.arange(max(1, math.ceil(h * scale))) + 0.5) * h / math.ceil(h * scale)).astype(int)
        cols = ((np.arange(max(1, math.ceil(w * scale))) + 0.5) * w / math.ceil(w * scale)).astype(int)
        img = img[np.ix_(rows, cols)]
    if masked_to is not None:
        img = np.ma.masked_less_equal(img, masked_to)
    return ax.imshow(img, interpolation="nearest", extent=(-0.5, w - 0.5, h - 0.5, -0.5), **kw)


def dice_bars(summary: dict, out_dir: Path) -> Path:
    """Mean Dice per method (best first), error bars: ±1 sd (thin) and ±1 sem (thick)."""
    plt = _plt()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    names = summary["ranking"]
    st = [summary["methods"][m]["metrics"]["dice"] for m in names]
    mean = np.array([s["mean"] for s in st], dtype=float)
    sd = np.nan_to_num(np.array([s["std"] for s in st], dtype=float))
    sem = np.nan_to_num(np.array([s["sem"] for s in st], dtype=float))
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(names), 3.6))
    x = np.arange(len(names))
    ax.bar(x, np.nan_to_num(mean), color="tab:blue", alpha=0.8)
    ax.errorbar(x, np.nan_to_num(mean), yerr=sd, fmt="none", ecolor="k", elinewidth=0.8, capsize=3, label="± sd")
    ax.errorbar(x, np.nan_to_num(mean), yerr=sem, fmt="none", ecolor="k", elinewidth=2.5, label="± sem")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Dice (positive slices)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out_dir) / "dice-by-method.png"
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def dice_curves(curves: dict[str, np.ndarray], grid: np.ndarray, thresholds: dict[str, list[dict]], out_dir: Path) -> Path:
    """Mean Dice over all positive slices against the threshold, one curve per method; the
    per-fold calibrated thresholds (grid strategy) are marked on each curve."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for m, c in curves.items():
        (line,) = ax.plot(grid, c, label=m, linewidth=1.2)
        for t in thresholds.get(m, []):
            i = int(np.argmin(np.abs(grid - t["threshold"])))
            ax.plot(grid[i], c[i], "o", color=line.get_color(), markersize=3)
    ax.set_xlabel("threshold on the map")
    ax.set_ylabel("mean Dice (positive slices)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(0.05, math.ceil(10 * max((float(np.nanmax(c)) for c in curves.values()), default=0.1)) / 10))
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(out_dir) / "dice-vs-threshold.png"
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
