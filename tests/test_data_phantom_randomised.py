"""The domain-randomised phantom: acquisition knobs, mimics, mass effect, subacute blood, the
writer's per-subject scans and the generator fingerprint. Each knob is checked against an
independent computation of what it should do, not against the phantom's own output."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from xaiseg.data.phantom import (CLEAN, FOV_MM, Acquisition, generator_fingerprint, render, sample_acquisition,
                                 sample_head, sample_lesion)
from xaiseg.data.phantom_acquisition import to_8bit_and_back
from xaiseg.data.phantom_lesions import SUBACUTE_P, mass_effect


def test_8bit_export_is_the_windowed_grey_level_read_back():
    hu = np.array([-1000.0, -21.0, -20.0, 1.0, 39.7, 40.3, 99.0, 100.0, 2000.0], dtype=np.float32)
    got = to_8bit_and_back(hu, 40.0, 120.0)
    for h, g in zip(hu, got):  # literal: grey = round(255 (hu - lo) / width) clipped, hu' = grey width / 255 + lo
        grey = min(255, max(0, int(math.floor((float(h) + 20.0) * 255.0 / 120.0 + 0.5))))
        assert g == pytest.approx(grey * 120.0 / 255.0 - 20.0, abs=1e-4)
    assert got.min() == pytest.approx(-20.0) and got.max() == pytest.approx(100.0)


def _pair(seed: int, acq: Acquisition, z: float = 0.55, subtypes=("intraparenchymal",), size: int = 128):
    """The same head, lesions and slice rng, scanned with ``acq``."""
    rng = np.random.default_rng(seed)
    head = sample_head(rng)
    lesions = [sample_lesion(rng, st, head, zc=z) for st in subtypes]
    return render(head, lesions, z, np.random.default_rng(seed + 1000), size=size, acquisition=acq)


def test_calibration_is_a_linear_map_of_the_hu_and_never_moves_the_truth():
    base = dataclasses.replace(CLEAN, noise_hu=4.0)
    drift = dataclasses.replace(base, hu_scale=1.05, hu_offset=-6.0)
    a, b = _pair(3, base), _pair(3, drift)
    expect = np.clip(a.hu * np.float32(1.05) + np.float32(-6.0), -1024, 3071)
    # same draws, same noise: the drifted slice is exactly the linear map of the plain one
    np.testing.assert_allclose(b.hu, expect, atol=1e-3)
    assert np.array_equal(a.mask, b.mask) and np.array_equal(a.brain, b.brain)


def test_8bit_acquisition_saturates_outside_its_window():
    s = _pair(4, dataclasses.replace(CLEAN, window8=(40.0, 120.0)))
    levels = np.round((s.hu + 20.0) * 255.0 / 120.0, 3)
    assert s.hu.min() == pytest.approx(-20.0) and s.hu.max() == pytest.approx(100.0)
    assert np.allclose(levels, np.round(levels))  # 256 grey levels, nothing in between


def test_blur_and_coarse_resolution_lower_the_high_frequencies():
    plain = _pair(5, dataclasses.replace(CLEAN, noise_hu=0.0))
    blurred = _pair(5, dataclasses.replace(CLEAN, noise_hu=0.0, blur_mm=2.0))
    coarse = _pair(5, dataclasses.replace(CLEAN, noise_hu=0.0, resolution=2.0))
    brain = ndi.binary_erosion(plain.brain > 0, iterations=3)

    def roughness(hu):  # mean absolute Laplacian inside the brain
        return float(np.abs(ndi.laplace(np.clip(hu, -20, 100).astype(np.float64)))[brain].mean())

    assert roughness(blurred.hu) < 0.7 * roughness(plain.hu)
    assert roughness(coarse.hu) < 0.8 * roughness(plain.hu)


def test_noise_level_and_grain():
    def residual(acq):
        a = _pair(6, dataclasses.replace(acq, noise_hu=0.0))
        b = _pair(6, acq)
        return (b.hu - a.hu)[a.brain > 0]

    px = FOV_MM / 128
    white = residual(dataclasses.replace(CLEAN, noise_hu=8.0))
    # sigma at REFERENCE_PIXEL_MM scales with sqrt(reference / pixel) (bigger pixels average more photons)
    assert white.std() == pytest.approx(8.0 * math.sqrt((FOV_MM / 512) / px), rel=0.1)
    # correlated noise keeps its standard deviation (the grain is texture, not level)
    assert residual(dataclasses.replace(CLEAN, noise_hu=8.0, grain_mm=3.0)).std() == pytest.approx(white.std(), rel=0.15)


def test_field_of_view_sets_the_pixel_size_and_keeps_anatomy_in_mm():
    small, big = _pair(7, CLEAN), _pair(7, dataclasses.replace(CLEAN, fov_mm=280.0))
    assert big.spacing == pytest.approx((280.0 / 128, 280.0 / 128))
    area = lambda s: s.brain.sum() * s.spacing[0] * s.spacing[1]  # noqa: E731
    assert area(big) == pytest.approx(area(small), rel=0.04)


def test_slice_thickness_smears_the_skull_into_the_brain_at_the_vertex():
    thin, thick = _pair(8, CLEAN, z=0.9, subtypes=()), _pair(8, dataclasses.replace(CLEAN, slice_mm=7.0), z=0.9, subtypes=())
    inside = thin.brain > 0
    # partial-volume skull: intracranial pixels of 100-700 HU appear only with the thick slab
    assert ((thick.hu > 100) & (thick.hu < 700) & inside).sum() > 3 * ((thin.hu > 100) & (thin.hu < 700) & inside).sum() + 5


def test_streaks_and_cupping_change_the_brain_but_not_the_truth():
    base = dataclasses.replace(CLEAN, noise_hu=0.0)
    a = _pair(9, base)
    b = _pair(9, dataclasses.replace(base, streak_rate=3.0, cupping_hu=10.0))
    assert np.array_equal(a.mask, b.mask)
    diff = np.abs(b.hu - a.hu)[a.brain > 0]
    assert diff.max() > 5.0
    # cupping brightens the brain next to the inner table more than deep brain
    edge = (a.brain > 0) & ~ndi.binary_erosion(a.brain > 0, iterations=2)
    deep = ndi.binary_erosion(a.brain > 0, iterations=15)
    c = _pair(9, dataclasses.replace(base, cupping_hu=10.0))
    assert (c.hu - a.hu)[edge].mean() > 3.0 > (c.hu - a.hu)[deep].mean()


def test_sample_acquisition_strength_and_ranges():
    rng = np.random.default_rng(0)
    assert all(sample_acquisition(rng, 0.0).window8 is None for _ in range(50))
    draws = [sample_acquisition(rng) for _ in range(600)]
    share8 = np.mean([d.window8 is not None for d in draws])
    assert abs(share8 - 0.35) < 4 * math.sqrt(0.35 * 0.65 / 600)  # binomial, 4 sd
    assert all(200 <= d.fov_mm <= 290 or d.fov_mm == FOV_MM for d in draws)
    assert all(0.94 <= d.hu_scale <= 1.06 and abs(d.hu_offset) <= 6 for d in draws)


def test_mimics_are_bright_on_negative_slices_as_often_as_on_positives():
    """"Something bright inside the brain" must not tell a positive slice from a negative one."""
    rng = np.random.default_rng(11)

    def bright(s) -> bool:  # a bright (> 90 HU) blob of >= 2 px inside the brain, outside any blood
        m = (ndi.median_filter(s.hu, 2) > 90) & (s.brain > 0) & ~ndi.binary_dilation(s.mask > 0, iterations=2)
        return bool(ndi.binary_opening(m, iterations=1).sum() >= 2 or m.sum() >= 4)

    neg = []
    for _ in range(40):
        head = sample_head(rng)
        neg.append(bright(render(head, [], float(rng.uniform(0.3, 0.8)), rng, size=128, acquisition=sample_acquisition(rng))))
    assert np.mean(neg) > 0.25, np.mean(neg)


def test_mass_effect_pushes_the_midline_away_from_a_large_collection():
    rng = np.random.default_rng(2)
    head = sample_head(rng)
    les = sample_lesion(rng, "subdural", head, zc=0.6)
    left = dataclasses.replace(les, params={**les.params, "theta": 0.0, "thick_mm": 16.0, "half_arc_mm": 60.0})
    shift, squeeze = mass_effect([left], 0.6)
    assert shift < -3.0 and squeeze[1] < 1.0 == squeeze[0]  # away to the right; the left ventricle squeezed
    assert mass_effect([left], 0.6 + 2 * les.hz) == (0.0, (1.0, 1.0))  # outside the lesion's extent: none
    # on the image the ventricular CSF moves towards the patient's right (image left, lower columns)
    hu0 = render(head, [], 0.6, np.random.default_rng(0), size=256).hu
    hu1 = render(head, [left], 0.6, np.random.default_rng(0), size=256).hu
    r, c = np.mgrid[:256, :256]
    central = (np.abs(c - 128) < 30) & (np.abs(r - 128) < 40)

    def csf_col(hu):
        w = central & (hu < 15) & (hu > -50)
        return (c * w).sum() / max(1, w.sum())

    assert csf_col(hu1) < csf_col(hu0) - 1.0


def test_subacute_share():
    rng = np.random.default_rng(3)
    head = sample_head(rng)
    blood = np.array([sample_lesion(rng, "intraparenchymal", head).blood_hu for _ in range(800)])
    assert ((blood >= 38) & (blood <= 90)).all()
    assert abs((blood < 52.0).mean() - SUBACUTE_P) < 0.05  # acute IPH starts at 55 HU


def test_writer_draws_one_acquisition_per_subject(tmp_path):
    from xaiseg.data.phantom_writer import write_phantom

    rnd = write_phantom(tmp_path / "r", subjects=3, slices_per_subject=2, size=32, seed=1, progress=False)
    clean = write_phantom(tmp_path / "c", subjects=3, slices_per_subject=2, size=32, seed=1, progress=False,
                          acquisition="clean")
    mr, mc = (json.loads((p / "phantom.json").read_text()) for p in (rnd, clean))
    assert mr["acquisition"] == "random" and mr["pixel_mm"] is None
    assert len({s["pixel_mm"] for s in mr["subject_list"]}) == 3
    assert mc["pixel_mm"] == pytest.approx(FOV_MM / 32)
    assert all(s["pixel_mm"] == pytest.approx(FOV_MM / 32) and s["acquisition"]["window8"] is None for s in mc["subject_list"])


def test_generator_fingerprint_covers_every_phantom_module(monkeypatch):
    import xaiseg.data.phantom as ph

    before = generator_fingerprint()
    monkeypatch.setattr(ph, "PHANTOM_VERSION", ph.PHANTOM_VERSION + 1)
    assert generator_fingerprint() != before


def test_phantom_command_acquisition_option(tmp_path):
    from click.testing import CliRunner

    from xaiseg.cli import main

    r = CliRunner().invoke(main, ["phantom", str(tmp_path / "c"), "--subjects", "1", "--slices", "2", "--size", "32",
                                  "--acquisition", "clean", "--quiet"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "c" / "phantom.json").read_text())
    assert meta["acquisition"] == "clean" and meta["version"] == 2
    r = CliRunner().invoke(main, ["phantom", str(tmp_path / "d"), "--acquisition", "foggy"])
    assert r.exit_code == 2 and "'foggy' is not one of 'random', 'clean'" in r.output and not (tmp_path / "d").exists()
