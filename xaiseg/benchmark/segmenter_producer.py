"""``--segmenter NAME=DIR`` (repeatable): a fully supervised segmenter's probability maps as rows
of the benchmark, beside the attribution maps, through the same slices, brain mask, thresholds
and metrics.

A segmenter row is named after its architecture (``unet``, ``swin-unetr``) unless named; its
maps are lesion probabilities, so they are brain-masked but not min–max renormalised (a
renormalised probability would turn a negative slice's faint noise into a full-range map).
Every slice is scored by a model that never saw its subject (the segmenter's fold guard),
checked for every selected subject before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from . import provenance


@dataclass
class SegmenterProducer:
    """A segmenter's lesion probabilities as a map producer (no classifier: its rows carry no
    detection probability)."""

    label: str
    segmenter_maps: Any  # xaiseg.segmenters.SegmenterMaps
    seed_key: str
    path: Path
    sha256: str  # of the checkpoint folder (every fold's model): part of the resume key
    classifier: None = None
    probabilities: bool = True

    def maps(self, batch: Any) -> torch.Tensor:
        return self.segmenter_maps.attribute(batch.raw, batch.subjects)


def segmenter_producers(specs: Sequence[Any], device: torch.device, shared: dict[str, Any], taken: set[str],
                        subjects: Sequence[str]) -> list[SegmenterProducer]:
    """Load every ``--segmenter`` on ``device``; each must preprocess as the classifiers do
    (``shared``), have a name no other row has, and never have seen a selected subject."""
    from ..segmenters import SegmenterMaps, load_segmenter
    from .inputs import preprocessing

    out: list[SegmenterProducer] = []
    for spec in specs:
        loaded = load_segmenter(spec.path, device=device)
        name = spec.name or loaded.architecture
        if name in taken:
            raise ConfigError(f"--segmenter {spec.path}: a row is already named {name!r}; name it, e.g. "
                              f"--segmenter {name}2={spec.path}")
        taken.add(name)
        mine = preprocessing(loaded.members[0].config)
        if mine != shared:
            raise ConfigError(f"--segmenter {name} preprocesses slices differently from the classifier ({mine} vs "
                              f"{shared}); train it with the classifier's input size and windows")
        for s in sorted(set(subjects)):
            loaded.models_for(s)  # the fold guard: a LeakageError naming the subject, before any work
        out.append(SegmenterProducer(name, SegmenterMaps(loaded, name), name, Path(spec.path),
                                     provenance.checkpoint_hash(Path(spec.path))))
    return out
