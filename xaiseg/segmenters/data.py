"""Slices and masks for a segmenter, preprocessed once and held in memory.

Each slice goes through the classifier's :class:`~xaiseg.data.preprocess.Preprocessor` (same
windows, resize and crop; the mask nearest-neighbour on the same geometry). They are read once,
in the data set's record order (one subject after another, so each volume is opened once), and
kept as float16 images (windowed values in [0, 1]: rounding < 5e-4) and uint8 masks; an epoch
is then a permutation of in-memory tensors instead of a re-read of every volume. Memory:
slices x channels x size² x 2 bytes (2 600 PhysioNet slices at 384 px: ~2.3 GB).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DataError


def load_mask_slices(dataset: Any, indices: Sequence[int], preprocessor: Any, *, progress: bool = False,
                     desc: str = "reading slices") -> tuple[torch.Tensor, torch.Tensor]:
    """``dataset[i]`` for i in ``indices`` -> (images (N, C, S, S) float16, masks (N, S, S) uint8)."""
    from ..progress import progress_bar

    n, (rows, cols) = len(indices), preprocessor.input_size
    images = torch.empty((n, preprocessor.channels, rows, cols), dtype=torch.float16)
    masks = torch.empty((n, rows, cols), dtype=torch.uint8)
    for j, i in enumerate(progress_bar(indices, desc=desc, leave=False, enabled=progress)):
        item = dataset[int(i)]
        if item.get("mask") is None:
            raise DataError(f"slice {item.get('slice')} of subject {item.get('subject')!r} has no mask: "
                            "--task segmentation needs a data set with hemorrhage masks (PhysioNet, folder, phantom)")
        out = preprocessor(np.asarray(item["image"], dtype=np.float32), mask=np.asarray(item["mask"]))
        images[j] = torch.as_tensor(out.image).to(torch.float16)
        masks[j] = out.mask
    return images, masks
