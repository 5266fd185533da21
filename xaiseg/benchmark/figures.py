"""The benchmark's figures (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..output.atomic import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _window(hu: np.ndarray, centre: float = 40.0, width: float = 80.0) -> np.ndarray:
    return np.clip((hu - (centre - width / 2)) / width, 0.0, 1.0)


def overlay_montage(method: str, samples: list[tuple[Any, Any, np.ndarray, float]], out_dir: Path) -> Path:
    """One column per sampled positive slice: top, the CT in brain window with the ground-truth
    contour (green); bottom, the method's map over the CT with its thresholded mask (red) and
    the ground truth (green)."""
    from .store import safe_name

    plt = _plt()
    n = len(samples)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    for j, (item, truth, sal, t) in enumerate(samples):
        ct = _window(np.asarray(item["image"], dtype=np.float32))
        gt = truth.gt.astype(float)
        for ax in axes[:, j]:
            ax.imshow(ct, cmap="gray", interpolation="nearest")
            ax.axis("off")
        axes[0, j].contour(gt, levels=[0.5], colors="lime", linewidths=0.8)
        axes[0, j].set_title(f"{item.get('subject', '')} #{item.get('slice', '')}", fontsize=8)
        # zero (outside the brain mask, or nothing) stays transparent so the CT shows through
        axes[1, j].imshow(np.ma.masked_less_equal(sal, 0.0), cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="nearest")
        pred = (np.asarray(sal, dtype=np.float64) > t).astype(float)
        if pred.any() and not pred.all():
            axes[1, j].contour(pred, levels=[0.5], colors="red", linewidths=0.8)
        axes[1, j].contour(gt, levels=[0.5], colors="lime", linewidths=0.8)
        axes[1, j].set_title(f"t = {t:.2f}", fontsize=8)
    fig.suptitle(f"{method}: ground truth (green), map and mask (red)", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88, wspace=0.04, hspace=0.12)  # tight_layout is slow
    path = Path(out_dir) / f"montage-{safe_name(method)}.png"
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


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
