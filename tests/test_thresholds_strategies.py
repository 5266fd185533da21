"""Threshold strategies: specs, per-map thresholds against skimage/numpy, grid calibration
against a brute-force search."""
from __future__ import annotations

import numpy as np
import pytest

import xaiseg
from xaiseg.errors import ConfigError
from xaiseg.metrics import binarize, dice, dice_curve
from xaiseg.thresholds import GridSearchThreshold, parse_threshold


def test_specs_parse_and_are_registered():
    assert {"fixed", "grid", "mean", "otsu", "percentile"} <= set(xaiseg.list_thresholds())
    assert parse_threshold("fixed:0.3").threshold(np.zeros((2, 2))) == 0.3
    assert parse_threshold("fixed:0.3").spec == "fixed:0.3"
    assert parse_threshold("grid").spec == "grid" and parse_threshold("grid").calibrated
    assert parse_threshold("grid:0.05").grid.tolist() == pytest.approx(np.arange(1, 20) * 0.05)
    assert parse_threshold("grid").grid[0] == 0.01 and parse_threshold("grid").grid[-1] == 0.99


@pytest.mark.parametrize(
    "spec,msg",
    [("fixed", "needs a value"), ("fixed:x", "not a number"), ("fixed:1.5", r"\[0, 1\]"),
     ("percentile:101", r"\[0, 100\]"), ("otsu:3", "takes no value"), ("bogus", "unknown threshold.*available")],
)
def test_bad_specs_are_one_line_config_errors(spec, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        parse_threshold(spec)
    assert "\n" not in str(e.value)


def test_per_map_strategies_match_independent_computations():
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(0)
    sal = rng.random((32, 32)) ** 3
    assert parse_threshold("otsu").threshold(sal) == pytest.approx(threshold_otsu(sal))
    assert parse_threshold("mean").threshold(sal) == pytest.approx(sal.mean())
    t = parse_threshold("percentile:90").threshold(sal)
    assert binarize(sal, t).mean() == pytest.approx(0.10, abs=1 / 1024)
    # a constant (all-zero) map gives an empty mask under every per-map strategy
    for spec in ("otsu", "mean", "percentile:50", "fixed:0"):
        assert not binarize(np.zeros((8, 8)), parse_threshold(spec).threshold(np.zeros((8, 8)))).any()
    # ... and a non-zero constant too: np.mean of 15 × 0.3 rounds to 0.29999999999999993
    const = np.full((3, 5), 0.3)
    assert const.mean() < 0.3
    for spec in ("otsu", "mean", "percentile:50"):
        assert not binarize(const, parse_threshold(spec).threshold(const)).any()


@pytest.mark.parametrize("spec", ["fixed:0.123456789", "percentile:99.99999", "grid:0.0123456789", "fixed:0.3", "grid:0.05"])
def test_a_spec_rebuilds_exactly_the_strategy_it_names(spec):
    # the spec is the run's recorded threshold and part of its resume key: it must not round
    a = parse_threshold(spec)
    b = parse_threshold(a.spec)
    assert a.spec == b.spec
    value = float(spec.split(":")[1])
    assert float(a.spec.split(":")[1]) == value
    if spec.startswith("grid"):
        assert np.array_equal(a.grid, b.grid)
    assert parse_threshold("percentile:95").spec == "percentile:95"  # short specs stay short


def test_grid_calibration_is_out_of_fold_and_equals_brute_force():
    rng = np.random.default_rng(5)
    strat = GridSearchThreshold("0.05")
    maps, gts, folds = [], [], []
    for i in range(12):
        gt = np.zeros((16, 16), bool)
        gt[4:10, 4:10] = True
        level = 0.2 + 0.15 * (i % 4)  # folds see different best thresholds
        maps.append(np.clip(gt * level + rng.random((16, 16)) * 0.3, 0, 1))
        gts.append(gt)
        folds.append(i % 3)
    curves = np.stack([dice_curve(m, g, strat.grid) for m, g in zip(maps, gts)])
    folds = np.array(folds)
    result = strat.calibrate(curves, folds, 3)
    for f, r in enumerate(result):
        # brute force: binarise every calibration map at every grid threshold
        others = [i for i in range(12) if folds[i] != f]
        means = [np.mean([dice(binarize(maps[i], t), gts[i]) for i in others]) for t in strat.grid]
        j = int(np.argmax(means))
        assert r["threshold"] == pytest.approx(strat.grid[j]) and r["calibration_dice"] == pytest.approx(means[j])
        assert r["calibration_slices"] == len(others)
    with pytest.raises(ConfigError, match="no positive slice"):
        strat.calibrate(curves[:4], np.zeros(4, int), 2)
