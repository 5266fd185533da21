"""Map producers: what the maps pass iterates over, one per column of the results.

A producer has a ``label`` (its name in every table, file and the resume key) and turns a
batch of model inputs into one map per image on the model's input grid. Today every producer
is an attribution method explaining the run's classifier (a method registered in
``xaiseg.methods``: adding one to the benchmark is writing that one class). The maps pass
asks nothing else of a producer, so other sources of maps — a supervised segmenter's
probability map, a method explaining a second classifier — are further producers, not changes
to the pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..method_spec import MethodSpec, build_method, method_class
from .inputs import Classifier


class MapProducer(Protocol):
    label: str

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) model inputs → (B, S, S) maps in [0, 1] on the same grid."""
        ...


@dataclass
class AttributionProducer:
    """An attribution method explaining ``target`` of the classifier."""

    label: str
    method: Any
    target: int

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.attribute(x, target=self.target)


def attribution_producers(specs: dict[str, MethodSpec], classifier: Classifier) -> list[MapProducer]:
    """One producer per method spec, in order, all on the run's classifier."""
    return [AttributionProducer(label, build_method(method_class(spec), spec, classifier.model), classifier.target)
            for label, spec in specs.items()]
