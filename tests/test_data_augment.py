"""Augmentation moves images and masks together."""
from __future__ import annotations

import torch

from xaiseg.data.augment import Augment


def _batch():
    img = torch.zeros(4, 3, 32, 32)
    m = torch.zeros(4, 32, 32, dtype=torch.uint8)
    img[:, :, 5:12, 18:27] = 1.0
    m[:, 5:12, 18:27] = 1
    return img, m


def test_flip_is_exact() -> None:
    img, m = _batch()
    out, mo = Augment(flip_p=1.0, rotate_deg=0, scale=0, translate=0)(img, m)
    assert torch.equal(out, img.flip(-1)) and torch.equal(mo, m.flip(-1))
    out, mo = Augment(flip_p=0.0, rotate_deg=0, scale=0, translate=0)(img, m)
    assert torch.allclose(out, img) and torch.equal(mo, m)


def test_image_and_mask_share_the_transform() -> None:
    img, m = _batch()
    aug = Augment(rotate_deg=20, scale=0.2, translate=0.1)
    g = torch.Generator().manual_seed(1)
    out, mo = aug(img, m, generator=g)
    assert mo.dtype == torch.uint8 and tuple(mo.shape) == (4, 32, 32)
    for i in range(4):
        # bilinear image vs nearest mask: they may differ only on the boundary pixels
        agree = ((out[i, 0] > 0.5) == (mo[i] > 0)).float().mean()
        assert agree > 0.98
        assert mo[i].sum() > 0
    assert not torch.equal(mo[0], m[0])  # something did move
    out2, mo2 = aug(img, m, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, out2) and torch.equal(mo, mo2)


def test_unbatched_and_noise() -> None:
    img, m = _batch()
    out, mo = Augment(noise_std=0.1)(img[0], m[0], generator=torch.Generator().manual_seed(0))
    assert tuple(out.shape) == (3, 32, 32) and tuple(mo.shape) == (32, 32)
    assert 0.05 < float((out - Augment(noise_std=0.0)(img[0], generator=torch.Generator().manual_seed(0))[0]).std()) < 0.15
