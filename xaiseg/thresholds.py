"""Threshold strategies: attribution map → binary mask (docs/design.md §3).

A strategy is named by a spec string, ``name`` or ``name:ARG`` (``fixed:0.5``, ``percentile:95``,
``grid``, ``grid:0.05``), and registered in the ``xaiseg.thresholds`` entry-point group; the
registered object is called with the ARG string (or None) and returns a
:class:`ThresholdStrategy`. :func:`parse_threshold` turns a spec into a strategy.

Every strategy binarises as ``map > t`` (strictly greater, compared in float64 — see
:func:`xaiseg.metrics.binarize`), so an all-zero map always gives an empty mask.

Two kinds:

* per-map strategies (fixed, otsu, mean, percentile) derive t from the map alone;
* calibrated strategies (grid) choose t on *other* subjects: for each subject-wise fold the t
  maximising the mean Dice over the other folds' positive slices is applied to that fold, so
  no slice is ever scored with a threshold tuned on its own subject. A third-party calibrated
  strategy implements :meth:`ThresholdStrategy.calibrate` the same way and needs nothing else.
"""
from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from .errors import ConfigError


def threshold_grid(step: float) -> np.ndarray:
    """STEP, 2·STEP, … < 1 (rounded, so 0.07 is 0.07 and not 0.07000000000000001)."""
    n = int(np.floor((1.0 - 1e-9) / step))
    return np.round(np.arange(1, n + 1) * step, 10)


DEFAULT_GRID = threshold_grid(0.01)  # 0.01 … 0.99


class ThresholdStrategy(abc.ABC):
    """Base class; ``spec`` is the canonical string that rebuilds the strategy.

    The benchmark samples every positive slice's Dice-vs-threshold curve at ``grid`` (for the
    figure, and as what calibration reads). A per-map strategy implements :meth:`threshold`; a
    calibrated one sets ``calibrated = True`` and implements :meth:`calibrate`, and the
    benchmark applies fold f's threshold to the slices of fold f. Nothing else is needed: the
    runner asks the strategy, never its class.
    """

    name: ClassVar[str] = ""
    calibrated: ClassVar[bool] = False
    grid: np.ndarray = DEFAULT_GRID

    @property
    @abc.abstractmethod
    def spec(self) -> str: ...

    def threshold(self, saliency: np.ndarray) -> float:
        """The threshold for one map (per-map strategies only)."""
        raise TypeError(f"threshold strategy {self.spec!r} is calibrated on other subjects; use calibrate()")

    def calibrate(self, curves: np.ndarray, fold_of: np.ndarray, k: int) -> list[dict]:
        """Per fold ``f`` in ``range(k)``, ``{"fold": f, "threshold": t, ...}`` (more keys are
        kept in summary.json), chosen from ``curves`` — (n, len(grid)) Dice of each positive
        slice at each grid threshold — and ``fold_of`` — (n,) the fold of each slice's subject.
        Per-map strategies have nothing to calibrate: ``[]``."""
        return []

    def __repr__(self) -> str:
        return f"<threshold {self.spec}>"


def _number(name: str, arg: str | None, lo: float, hi: float, what: str) -> float:
    if arg is None or arg == "":
        raise ConfigError(f"threshold {name!r} needs a value, e.g. {name}:{what}")
    try:
        v = float(arg)
    except ValueError:
        raise ConfigError(f"threshold {name}:{arg}: {arg!r} is not a number") from None
    if not (lo <= v <= hi) or not np.isfinite(v):
        raise ConfigError(f"threshold {name}:{arg}: value must lie in [{lo:g}, {hi:g}]")
    return v


def _exact(x: float) -> str:
    """Shortest text that reads back as exactly ``x`` (``:g`` alone keeps 6 digits, so a spec
    could name a different threshold than the one applied, and two runs share a resume key)."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def _no_arg(name: str, arg: str | None) -> None:
    if arg not in (None, ""):
        raise ConfigError(f"threshold {name!r} takes no value (got {name}:{arg})")


class FixedThreshold(ThresholdStrategy):
    """``fixed:T`` — the same t in [0, 1] for every map."""

    name = "fixed"

    def __init__(self, arg: str | None = None) -> None:
        self.t = _number("fixed", arg, 0.0, 1.0, "0.5")

    @property
    def spec(self) -> str:
        return f"fixed:{_exact(self.t)}"

    def threshold(self, saliency: np.ndarray) -> float:
        return self.t


class OtsuThreshold(ThresholdStrategy):
    """``otsu`` — Otsu's threshold of the map's histogram (scikit-image, 256 bins)."""

    name = "otsu"

    def __init__(self, arg: str | None = None) -> None:
        _no_arg("otsu", arg)

    @property
    def spec(self) -> str:
        return "otsu"

    def threshold(self, saliency: np.ndarray) -> float:
        from skimage.filters import threshold_otsu

        s = np.asarray(saliency, dtype=np.float64)
        if s.max() == s.min():  # no histogram to split: nothing stands out, empty mask
            return float(s.max())
        return float(threshold_otsu(s))


class MeanThreshold(ThresholdStrategy):
    """``mean`` — the map's mean value."""

    name = "mean"

    def __init__(self, arg: str | None = None) -> None:
        _no_arg("mean", arg)

    @property
    def spec(self) -> str:
        return "mean"

    def threshold(self, saliency: np.ndarray) -> float:
        s = np.asarray(saliency, dtype=np.float64)
        if s.max() == s.min():  # the rounded mean can fall just below a constant: keep it empty
            return float(s.max())
        return float(s.mean())


class PercentileThreshold(ThresholdStrategy):
    """``percentile:P`` — the P-th percentile of the map's values (over the whole slice), so
    ``percentile:95`` keeps about the top 5 % of pixels."""

    name = "percentile"

    def __init__(self, arg: str | None = None) -> None:
        self.p = _number("percentile", arg, 0.0, 100.0, "95")

    @property
    def spec(self) -> str:
        return f"percentile:{_exact(self.p)}"

    def threshold(self, saliency: np.ndarray) -> float:
        return float(np.percentile(np.asarray(saliency, dtype=np.float64), self.p))


class GridSearchThreshold(ThresholdStrategy):
    """``grid`` or ``grid:STEP`` — thresholds STEP, 2·STEP, …, < 1 (default step 0.01, i.e.
    0.01…0.99); per fold, the one maximising the mean Dice on the other folds' positive slices
    (ties: the lowest threshold)."""

    name = "grid"
    calibrated = True

    def __init__(self, arg: str | None = None) -> None:
        self.step = 0.01 if arg in (None, "") else _number("grid", arg, 1e-4, 0.5, "0.01")
        self.grid = threshold_grid(self.step)

    @property
    def spec(self) -> str:
        return "grid" if self.step == 0.01 else f"grid:{_exact(self.step)}"

    def calibrate(self, curves: np.ndarray, fold_of: np.ndarray, k: int) -> list[dict]:
        """Per fold, the grid threshold with the best mean Dice on the other folds' slices, and
        that Dice (``calibration_dice``) over ``calibration_slices`` slices."""
        curves = np.asarray(curves, dtype=np.float64)
        fold_of = np.asarray(fold_of)
        if curves.ndim != 2 or curves.shape[1] != self.grid.size or curves.shape[0] != fold_of.size:
            raise ValueError(f"curves must be (n, {self.grid.size}) with one fold per row, got {curves.shape}")
        out = []
        for f in range(k):
            calib = fold_of != f
            if not calib.any():
                raise ConfigError(
                    f"grid threshold: fold {f} has no positive slice in the other folds to calibrate on; "
                    "use more subjects, fewer --folds, or a per-map threshold (otsu, mean, fixed:T)"
                )
            mean_dice = curves[calib].mean(axis=0)
            j = int(np.argmax(mean_dice))  # first maximum = lowest threshold
            out.append({
                "fold": f,
                "threshold": float(self.grid[j]),
                "calibration_dice": float(mean_dice[j]),
                "calibration_slices": int(calib.sum()),
            })
        return out


def parse_threshold(spec: str | ThresholdStrategy) -> ThresholdStrategy:
    """``"grid"``, ``"otsu"``, ``"mean"``, ``"fixed:0.5"``, ``"percentile:95"`` (or any
    registered name) → a strategy; a bad spec raises :class:`~xaiseg.errors.ConfigError`."""
    if isinstance(spec, ThresholdStrategy):
        return spec
    from .registry import UnknownNameError, list_thresholds, thresholds

    name, _, arg = str(spec).strip().partition(":")
    try:
        factory = thresholds.get(name)
    except UnknownNameError:
        raise ConfigError(
            f"unknown threshold strategy {spec!r}; available: {', '.join(list_thresholds()) or 'none'} "
            "(fixed and percentile take a value, e.g. fixed:0.5, percentile:95)"
        ) from None
    strategy = factory(arg or None)
    if not isinstance(strategy, ThresholdStrategy):
        raise ConfigError(f"threshold strategy {name!r} did not build a ThresholdStrategy")
    return strategy
