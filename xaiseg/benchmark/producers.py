"""Map producers: what the maps pass iterates over, one per row of the results.

A producer has a ``label`` (its name in every table, file and the resume key), the
``classifier`` whose input batch it reads and whose probability its rows carry (None: a
segmenter, whose rows carry none), a ``seed_key`` (what its stochastic draws are seeded by),
``probabilities`` (its maps are probabilities, thresholded as they are rather than min–max
renormalised) and turns a :class:`MapBatch` into one map per image on the model's input grid;
optionally it declares its call to the batch's :class:`~xaiseg.attribution.shared.SharedPasses`
first (attention methods share one forward/backward per batch). Today every producer is an attribution method
explaining one logit of one of the run's classifiers (a method registered in
``xaiseg.methods``: adding one to the benchmark is writing that one class). The maps pass
asks nothing else of a producer, so other sources of maps — a supervised segmenter's
probability map (:mod:`.segmenter_producer`) — are further producers, not changes to the pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Protocol, Sequence

import torch

from ..data.constants import SUBTYPES
from ..errors import ConfigError
from ..attribution.shared import SharedPasses
from ..attribution.spec import MethodSpec, build_method, method_class
from .checkpoints import row_label
from .inputs import Classifier


@dataclass
class MapBatch:
    """One batch as the producers read it: the preprocessed slices before any model's
    normalisation (``raw``, on the device), their subjects, and each classifier's input batch."""

    raw: torch.Tensor
    subjects: list[str]
    inputs: dict[int, torch.Tensor]  # id(classifier) → its normalised input batch

    def input_of(self, classifier: Classifier) -> torch.Tensor:
        return self.inputs[id(classifier)]


class MapProducer(Protocol):
    label: str
    seed_key: str
    classifier: Classifier | None
    probabilities: bool

    def maps(self, batch: MapBatch) -> torch.Tensor:
        """A batch → (B, S, S) maps in [0, 1] on the model input grid."""
        ...


@dataclass
class AttributionProducer:
    """An attribution method explaining logit ``target`` of ``classifier``."""

    label: str
    method: Any
    target: int
    classifier: Classifier
    seed_key: str  # the row label without the classifier's name: a row draws the same numbers in any run
    probabilities: bool = False  # attribution maps: min–max renormalised after the brain mask

    def maps(self, batch: MapBatch) -> torch.Tensor:
        return self.method.attribute(batch.input_of(self.classifier), target=self.target)

    def declare(self, memo: SharedPasses, batch: MapBatch) -> Hashable | None:
        """Announce this producer's call to the batch's memo (attention methods explaining the
        same logit of the same classifier then share one pass; None: it shares nothing)."""
        return memo.declare(self.method, batch.input_of(self.classifier), self.target)


def explained_targets(classifier: Classifier, targets: str) -> list[tuple[str, int]]:
    """(label suffix, logit) pairs: the classifier's own target (``""``), then with
    ``targets == "subtypes"`` each subtype logit of a subtype classifier (``"@subdural"``)."""
    out = [("", classifier.target)]
    if targets == "subtypes" and classifier.task == "subtypes":
        names = classifier.class_names
        out += [(f"@{st}", names.index(st)) for st in SUBTYPES if st in names]
    return out


def attribution_producers(specs: dict[str, MethodSpec], classifiers: Sequence[Classifier],
                          targets: str = "any") -> list[MapProducer]:
    """Per classifier, per method spec, per explained logit, one producer, in that order."""
    if targets == "subtypes" and not any(c.task == "subtypes" for c in classifiers):
        raise ConfigError("--targets subtypes needs a subtype classifier (trained with --task subtypes); "
                          "the run's classifiers are all binary")
    out: list[MapProducer] = []
    for c in classifiers:
        for label, spec in specs.items():
            method = build_method(method_class(spec), spec, c.model)
            for suffix, logit in explained_targets(c, targets):
                out.append(AttributionProducer(row_label(c.name, label + suffix), method, logit, c, label + suffix))
    return out


def probability_rows(producers: Sequence[MapProducer]) -> frozenset[str]:
    """The row labels whose maps are probabilities (thresholded as they are, not min–max renormalised)."""
    return frozenset(p.label for p in producers if p.probabilities)
