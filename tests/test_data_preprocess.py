"""Windowing, resizing/cropping geometry and its inverse, checked against hand computations
and scikit-image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xaiseg.data import DEFAULT_WINDOWS
from xaiseg.data.preprocess import Preprocessor, window_channels


def test_window_channels_by_hand() -> None:
    hu = np.array([[-1000.0, -20.0, 0.0], [40.0, 100.0, 2000.0]], np.float32)
    out = window_channels(hu, [(40, 120), (600, 2800)])
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    # brain window: lo = -20, width 120
    np.testing.assert_allclose(out[0], [[0, 0, 20 / 120], [60 / 120, 1, 1]], atol=1e-6)
    # bone window: lo = -800, width 2800
    np.testing.assert_allclose(out[1], [[0, 780 / 2800, 800 / 2800], [840 / 2800, 900 / 2800, 1]], atol=1e-6)
    t = window_channels(torch.from_numpy(np.stack([hu, hu])), DEFAULT_WINDOWS)
    assert tuple(t.shape) == (2, 3, 2, 3)
    np.testing.assert_allclose(t[1, 0].numpy(), out[0], atol=1e-6)
    with pytest.raises(ValueError):
        window_channels(hu, [(40, 0)])


def test_resize_matches_skimage_and_masks_stay_binary() -> None:
    from skimage.transform import resize

    rng = np.random.default_rng(0)
    hu = rng.uniform(-20, 100, (40, 40)).astype(np.float32)  # stays inside the brain window
    pre = Preprocessor(24, windows=[(40, 120)])
    mask = (rng.random((40, 40)) > 0.7).astype(np.uint8)
    image, m, b, geo = pre(hu, mask=mask)
    ref = resize(hu.astype(np.float64), (24, 24), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(image[0].numpy(), (ref + 20) / 120, atol=1e-5)
    assert m.dtype == torch.uint8 and set(np.unique(m.numpy())) <= {0, 1} and b is None
    # nearest-exact: output pixel i takes input pixel floor((i + 0.5) * 40 / 24)
    idx = np.floor((np.arange(24) + 0.5) * 40 / 24).astype(int)
    np.testing.assert_array_equal(m.numpy(), mask[np.ix_(idx, idx)])
    assert geo.original == (40, 40) and geo.output == (24, 24)


def test_crop_geometry_and_inverse_by_hand() -> None:
    # no resize (8 -> 8), centre crop to 4: output (y, x) = original (y + 2, x + 2)
    pre = Preprocessor(4, windows=[(0, 2000)], resize=8)
    hu = np.arange(64, dtype=np.float32).reshape(8, 8)
    image, _, _, geo = pre(hu)
    assert (geo.top, geo.left) == (2, 2)
    np.testing.assert_allclose(image[0].numpy() * 2000 - 1000, hu[2:6, 2:6], atol=1e-3)
    marker = np.zeros((4, 4), np.float32)
    marker[1, 3] = 1.0
    back = geo.to_original(marker)
    assert back.shape == (8, 8) and back[3, 5] == 1.0 and back.sum() == 1.0
    # HGI-SAM's recipe on a 512 slice: resize 422, crop 384
    geo = Preprocessor(384, resize=422).geometry((512, 512))
    assert (geo.top, geo.left, geo.resized) == (19, 19, (422, 422))


def test_pad_with_air_and_round_trip() -> None:
    pre = Preprocessor(8, windows=[(40, 120)], resize=4)
    hu = np.full((4, 4), 100.0, np.float32)
    image, m, _, geo = pre(hu, mask=np.ones((4, 4)))
    assert (geo.top, geo.left) == (-2, -2)
    assert image[0, 2:6, 2:6].min() == 1.0 and image[0].sum() == 16  # padding is air -> 0
    assert int(m.sum()) == 16 and m[2:6, 2:6].all()
    # a smooth map survives original -> input -> original (no crop): bilinear both ways
    pre = Preprocessor(64)
    yy, xx = np.mgrid[0:96, 0:96] / 95.0
    smooth = (np.sin(2 * yy) + xx).astype(np.float32)
    geo = pre(np.zeros((96, 96), np.float32)).geometry
    back = geo.to_original(geo.to_input(smooth))
    assert np.abs(back - smooth)[4:-4, 4:-4].max() < 0.02
    t = geo.to_original(torch.from_numpy(geo.to_input(np.stack([smooth, smooth]))))
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == (2, 96, 96)


def test_non_square_slices_keep_their_aspect_ratio() -> None:
    import torchvision.transforms.functional as TF

    # resize=N: the shorter side becomes N, as torchvision's Resize(N) (the reference's recipe)
    for shape in [(512, 400), (400, 512), (512, 512), (333, 517)]:
        want = tuple(TF.resize(torch.zeros(1, *shape), 422, antialias=False).shape[-2:])
        geo = Preprocessor(384, resize=422).geometry(shape)
        assert geo.resized == want, shape
        assert (geo.top, geo.left) == ((want[0] - 384) // 2, (want[1] - 384) // 2)
    # default: the whole slice fits, the shorter side padded with air; a round disc stays round
    hu = np.full((100, 60), -1000.0, np.float32)
    yy, xx = np.mgrid[0:100, 0:60]
    hu[(yy - 50) ** 2 + (xx - 30) ** 2 <= 20**2] = 60.0
    image, _, _, geo = Preprocessor(50, windows=[(40, 120)])(hu)
    assert geo.resized == (50, 30) and (geo.top, geo.left) == (0, -10)
    disc = image[0].numpy() > 0.5
    rows, cols = np.nonzero(disc)
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 1  # not squashed
    assert image[0, :, :10].max() == 0 and image[0, :, 40:].max() == 0  # padding is air
    back = geo.to_original(image[0].numpy())
    assert back.shape == (100, 60)
    # an explicit (rows, cols) still resizes to exactly that
    assert Preprocessor(50, resize=(50, 50)).geometry((100, 60)).resized == (50, 50)
