"""``xaiseg explain``: one method's maps for one scan, written on the scan's own grid.

The maps go through exactly the benchmark's steps (model-grid map, float16 rounding, back to
the original slice grid, brain mask, min–max), so they equal what ``xaiseg benchmark
--save-maps`` writes for the same scan, method, checkpoint and brain mask.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ..progress import progress_bar

from ..errors import ConfigError, DataError
from ..attribution.spec import build_method, method_class, parse_method_spec
from ..output.paths import check_new_file
from .evaluate import SliceTruth, evaluation_map, quantize
from .nifti_maps import save_like


def explain_scan(
    checkpoint: str | Path,
    input: str | Path,
    method: str = "hgi-sam",
    out: str | Path | None = None,
    brain_mask: str | Path = "auto",
    device: str | torch.device | None = "auto",
    batch_size: int = 8,
    progress: bool = True,
    method_options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> tuple[np.ndarray, Path | None]:
    """Maps of every axial slice of the NIfTI scan ``input`` (voxel grid of the file, float32
    in [0, 1]); written to ``out`` (NIfTI, same affine and header) when given.

    ``brain_mask``: ``auto`` (computed from HU per slice), ``none``, or a NIfTI brain mask on
    the scan's grid. ``out`` must not be an input (the scan, the brain mask, the checkpoint's
    files); an existing ``out`` is replaced only with ``overwrite``, and atomically (written to
    a temporary name, renamed when complete).
    """
    from .. import load_model
    from ..data.brain import brain_mask as auto_brain
    from ..data.base import check_finite
    from ..data.nifti import load_volume, open_nifti, slice_item

    spec = parse_method_spec(method)
    cls = method_class(spec)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if out is not None:
        ckpt = Path(checkpoint)
        inputs = [Path(input), ckpt, ckpt / "model.safetensors", ckpt / "config.json"]
        check_new_file(out, inputs + ([] if str(brain_mask) in ("auto", "none") else [Path(brain_mask)]), overwrite)
        if not str(out).endswith((".nii", ".nii.gz")):
            raise ConfigError(f"--out {str(out)!r} must end in .nii or .nii.gz (a NIfTI file)")
    src = Path(input)
    img = open_nifti(src)
    brain_file = None
    if str(brain_mask) not in ("auto", "none"):
        brain_file = Path(brain_mask)
        if not brain_file.exists():
            raise DataError(f"{brain_file}: brain-mask file not found")
    loaded = load_model(checkpoint, device=device)
    explainer = build_method(cls, spec, loaded.model, **(method_options or {}))
    vol = load_volume(src, None, brain_file)
    check_finite(np.asarray(vol["ct"]), str(src))  # the whole scan, before the maps pass
    n = int(vol["ct"].shape[2])
    out_vol = np.zeros(tuple(vol["ct"].shape), dtype=np.float32)
    target = loaded.target_index
    for start in progress_bar(range(0, n, batch_size), desc=f"{method}", unit="batch", enabled=progress):  # None: quiet off a terminal
        ks = list(range(start, min(n, start + batch_size)))
        xs, truths = [], []
        for k in ks:
            item = slice_item(vol, k, f"{src} slice {k + 1}")
            hu = np.asarray(item["image"], dtype=np.float32)
            brain = None
            if str(brain_mask) != "none":
                brain = np.asarray(item["brain"]) > 0 if "brain" in item else auto_brain(hu, item["spacing"]) > 0
            image, _m, _b, geometry = loaded.preprocessor(hu)
            xs.append(torch.as_tensor(np.asarray(image)).float())
            truths.append(SliceTruth(gt=np.zeros(hu.shape, bool), spacing=tuple(item["spacing"]), brain=brain, geometry=geometry))
        x = torch.stack(xs).to(loaded.device)
        if hasattr(loaded, "normalize"):
            x = loaded.normalize(x)
        q = quantize(explainer.attribute(x, target=target))
        for j, k in enumerate(ks):
            out_vol[:, :, k] = vol["tf"].invert(evaluation_map(q[j], truths[j]))
    if out is None:
        return out_vol, None
    # save_like writes atomically: a full disk or Ctrl-C never leaves a truncated --out, and an
    # error names --out itself (a second temporary around it would name its own temporary)
    return out_vol, save_like(img, out_vol, Path(out))
