"""``xaiseg explain``: one method's maps (or a segmenter's probabilities) for one scan, written
on the scan's own grid.

The maps go through exactly the benchmark's steps (model-grid map, float16 rounding, back to
the original slice grid, brain mask, min–max), so they equal what ``xaiseg benchmark
--save-maps`` writes for the same scan, method, checkpoint and brain mask. A segmenter's maps
take the benchmark's segmenter-row steps: brain-masked probabilities, not renormalised.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from ..progress import progress_bar

from ..errors import ConfigError, DataError
from ..attribution.spec import build_method, method_class, parse_method_spec
from ..output.paths import check_new_file
from .evaluate import EvaluationGrid, SliceTruth, quantize
from .nifti_maps import save_like


def explain_scan(
    checkpoint: str | Path | None,
    input: str | Path,
    method: str | None = "hgi-sam",
    out: str | Path | None = None,
    brain_mask: str | Path = "auto",
    device: str | torch.device | None = "auto",
    batch_size: int = 8,
    progress: bool = True,
    method_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    segmenter: str | Path | None = None,
    subject: str | None = None,
) -> tuple[np.ndarray, Path | None]:
    """Maps of every axial slice of the NIfTI scan ``input`` (voxel grid of the file, float32
    in [0, 1]); written to ``out`` (NIfTI, same affine and header) when given.

    Either ``checkpoint`` (a classifier, explained by ``method``) or ``segmenter`` (a directory
    of ``xaiseg train --task segmentation``: its lesion probabilities, brain-masked, from the
    models that never saw ``subject``; default subject: the file name without its extension,
    as the data loaders name subjects, so a training scan is scored by its held-out fold).
    ``brain_mask``: ``auto`` (computed from HU per slice), ``none``, or a NIfTI brain mask on
    the scan's grid. ``out`` must not be an input (the scan, the brain mask, the checkpoint's
    files); an existing ``out`` is replaced only with ``overwrite``, and atomically (written to
    a temporary name, renamed when complete).
    """
    from ..data.base import check_finite
    from ..data.nifti import load_volume, nifti_stem, open_nifti

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if (checkpoint is None) == (segmenter is None):
        raise ConfigError("give either a classifier checkpoint (with --method) or --segmenter DIR, not both")
    src = Path(input)
    model_dir = Path(checkpoint if segmenter is None else segmenter)
    if out is not None:
        inputs = [src, model_dir, model_dir / "model.safetensors", model_dir / "config.json"]
        check_new_file(out, inputs + ([] if str(brain_mask) in ("auto", "none") else [Path(brain_mask)]), overwrite)
        if not str(out).endswith((".nii", ".nii.gz")):
            raise ConfigError(f"--out {str(out)!r} must end in .nii or .nii.gz (a NIfTI file)")
    img = open_nifti(src)
    brain_file = None
    if str(brain_mask) not in ("auto", "none"):
        brain_file = Path(brain_mask)
        if not brain_file.exists():
            raise DataError(f"{brain_file}: brain-mask file not found")
    if segmenter is None:
        source = _classifier_source(model_dir, method or "hgi-sam", method_options, device)
    else:
        if method is not None:
            raise ConfigError("--method explains a classifier; a --segmenter gives its own probability maps (drop --method)")
        source = _segmenter_source(model_dir, subject or nifti_stem(src) or src.stem, device)  # as the loaders name it
    vol = load_volume(src, None, brain_file)
    check_finite(np.asarray(vol["ct"]), str(src))  # the whole scan, before the maps pass
    out_vol = _maps_of_volume(vol, source, str(brain_mask) != "none", batch_size, progress, str(src))
    if out is None:
        return out_vol, None
    # save_like writes atomically: a full disk or Ctrl-C never leaves a truncated --out, and an
    # error names --out itself (a second temporary around it would name its own temporary)
    return out_vol, save_like(img, out_vol, Path(out))


@dataclass
class _Source:
    """Where one batch's model-grid maps come from: a classifier's method or a segmenter."""

    name: str
    preprocessor: Any
    maps: Callable[[torch.Tensor], torch.Tensor]  # preprocessed (B, C, S, S) slices -> (B, S, S)
    renormalize: bool  # attribution maps: min-max per slice; probabilities keep their scale


def _classifier_source(checkpoint: Path, method: str, options: dict[str, Any] | None, device: Any) -> _Source:
    from .. import load_model

    spec = parse_method_spec(method)
    cls = method_class(spec)
    loaded = load_model(checkpoint, device=device)
    explainer = build_method(cls, spec, loaded.model, **(options or {}))

    def maps(x: torch.Tensor) -> torch.Tensor:
        return explainer.attribute(loaded.normalize(x.to(loaded.device)), target=loaded.target_index)

    return _Source(method, loaded.preprocessor, maps, True)


def _segmenter_source(directory: Path, subject: str, device: Any) -> _Source:
    from ..segmenters import SegmenterMaps, load_segmenter

    seg = SegmenterMaps(load_segmenter(directory, device=device))
    seg.segmenter.models_for(subject)  # the fold guard, before any slice is read

    def maps(x: torch.Tensor) -> torch.Tensor:
        return seg.attribute(x, [subject] * len(x))

    return _Source(seg.name, seg.preprocessor, maps, False)


def _maps_of_volume(vol: dict, source: _Source, use_brain: bool, batch_size: int, progress: bool, label: str) -> np.ndarray:
    from ..data.brain import brain_mask as auto_brain
    from ..data.nifti import slice_item

    n = int(vol["ct"].shape[2])
    out_vol = np.zeros(tuple(vol["ct"].shape), dtype=np.float32)
    for start in progress_bar(range(0, n, batch_size), desc=source.name, unit="batch", enabled=progress):  # None: quiet off a terminal
        ks = list(range(start, min(n, start + batch_size)))
        xs, truths = [], []
        for k in ks:
            item = slice_item(vol, k, f"{label} slice {k + 1}")
            hu = np.asarray(item["image"], dtype=np.float32)
            brain = None
            if use_brain:
                brain = np.asarray(item["brain"]) > 0 if "brain" in item else auto_brain(hu, item["spacing"]) > 0
            image, _m, _b, geometry = source.preprocessor(hu)
            xs.append(torch.as_tensor(np.asarray(image)).float())
            truths.append(SliceTruth(gt=np.zeros(hu.shape, bool), spacing=tuple(item["spacing"]), brain=brain, geometry=geometry))
        sals = EvaluationGrid(truths).maps(quantize(source.maps(torch.stack(xs))), renormalize=source.renormalize)
        for j, k in enumerate(ks):
            out_vol[:, :, k] = vol["tf"].invert(sals[j])
    return out_vol
