"""``BenchmarkConfig``: every option of a benchmark run, defined once.

Each field carries its command-line help in its metadata; ``xaiseg benchmark`` builds its
click options from these fields, :func:`xaiseg.benchmark.run` takes them as keyword arguments,
and run.json's ``config`` (hence the resume key) is derived from :meth:`BenchmarkConfig.recorded`.
The config is validated once, when it is built, before any work starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from ..data import LAYOUTS
from ..errors import ConfigError
from ..attribution.spec import MethodSpec, method_class, parse_method_spec, split_method_list
from ..thresholds import ThresholdStrategy, parse_threshold
from .checkpoints import CheckpointSpec, check_targets, parse_checkpoints, parse_segmenters

DEFAULT_METHODS: tuple[str, ...] = (
    "hgi-sam", "swin-sam", "gradcam", "rollout", "grad-rollout", "saliency", "centre-prior",
)
DEFAULT_NEGATIVE_RATIO = 1.0  # the embedded default run: as many negatives as positives
LAYOUT_CHOICES: tuple[str, ...] = ("auto", *(name for name in LAYOUTS if name != "auto"))


def option(default: Any, help: str, *, kind: str = "text", recorded: bool = True, cli: str | None = None,
           show_default: bool = False) -> Any:
    """A config field. ``kind``: text | path | int | float | flag | layout; ``recorded``: part of
    run.json's config and the resume key (what the results depend on, not how they are run);
    ``cli``: the option's name when it is not ``--field-name`` (``--no-figures`` inverts a flag)."""
    meta = {"help": help, "kind": kind, "recorded": recorded, "cli": cli, "show_default": show_default}
    return field(default=default, metadata=meta)


def internal(default: Any, recorded: bool = False) -> Any:
    """A library-only field (no command-line option)."""
    return field(default=default, metadata={"recorded": recorded})


@dataclass(frozen=True)
class BenchmarkConfig:
    """The options of one benchmark run (see docs/benchmark.md); invalid values raise
    :class:`~xaiseg.errors.ConfigError` with a one-line message when the config is built."""

    data: str | Path | None = option(None, "Data set folder (default: the built-in phantom, generated once into the cache).", kind="path")
    layout: str = option("auto", "Layout of --data (auto: guessed from its files).", kind="layout", show_default=True)
    checkpoint: str | Path | Sequence[str | Path] | None = option(
        None, "Classifier checkpoint folder, or NAME=DIR; repeat it to compare classifiers (every method runs on "
        "each; rows are NAME/method; NAME defaults to the folder's name). Default: the shipped tiny phantom classifier.",
        kind="paths")
    segmenter: str | Path | Sequence[str | Path] | None = option(
        None, "Segmenter checkpoint folder (xaiseg train --task segmentation), or NAME=DIR; repeatable. Its "
        "probability maps are extra rows (named after the architecture, e.g. unet), scored like every method.",
        kind="paths", recorded=False)
    targets: str = option("any", "any: explain each classifier's hemorrhage (any) logit; subtypes: also each subtype "
                          "logit of a subtype classifier, as extra rows METHOD@SUBTYPE.", kind="targets",
                          show_default=True, recorded=False)
    methods: str | Sequence[str] | None = option(
        None, "Comma-separated method names (see `xaiseg methods`), each optionally with its options as a JSON object, "
        "e.g. 'hgi-sam,hgi-sam{\"stages\":[0,1,2,3]}'. Default: " + ",".join(DEFAULT_METHODS) + ".")
    threshold: str | ThresholdStrategy = option("grid", "grid[:STEP] | otsu | mean | fixed:T | percentile:P.", show_default=True)
    folds: int = option(5, "Subject-wise folds for the grid threshold.", kind="int", show_default=True)
    brain_mask: str = option("auto", "auto (the data set's brain masks, else computed from HU) | none | DIR of brain masks.",
                             show_default=True)
    out: str | Path | None = option(None, "Output folder (default: ./xaiseg-results/<timestamp>).", kind="path", recorded=False)
    device: str | Any = option("auto", "auto (CUDA if available), cpu, cuda, cuda:1, ...", show_default=True)
    batch_size: int = option(8, "", kind="int", show_default=True)
    workers: int | None = option(None, "Background threads reading, brain-masking and preparing the next batches while "
                                 "the model runs (0: none; default: 1 on a machine with two or more cores). The "
                                 "results do not depend on it.", kind="int", recorded=False)
    resume: bool = option(False, "Continue an interrupted run in --out (same options).", kind="flag", recorded=False)
    limit: int | None = option(None, "Score only N slices, spread evenly over the data set.", kind="int")
    positives_only: bool = option(False, "Only hemorrhage-positive slices (faster; no false-positive areas).", kind="flag")
    negative_ratio: float | None = option(None, "Score at most R negative slices per positive slice, spread evenly (default: "
                                          "all; 1 for the built-in phantom).", kind="float")
    save_maps: bool = option(False, "Also write each method's maps as NIfTI volumes on the original grid.", kind="flag",
                             recorded=False)
    seed: int = option(0, "Seed for folds and stochastic methods.", kind="int", show_default=True)
    figures: bool = option(True, "Skip the PNG figures.", kind="flag", recorded=False, cli="--no-figures")
    keep_cache: bool = option(False, "Keep the per-batch map cache after a complete run.", kind="flag", recorded=False)
    skip_bad: bool = option(False, "Skip unreadable or inconsistent files of --data (counted and reported) instead of "
                            "stopping at the first with an error.", kind="flag")
    progress: bool = internal(True)
    montage_slices: int = internal(6)
    # derived once from the fields above, by __post_init__
    specs: dict[str, MethodSpec] = field(init=False, repr=False, compare=False, metadata={"derived": True})
    strategy: ThresholdStrategy = field(init=False, repr=False, compare=False, metadata={"derived": True})
    checkpoints: list[CheckpointSpec] = field(init=False, repr=False, compare=False, metadata={"derived": True})
    segmenters: list[CheckpointSpec] = field(init=False, repr=False, compare=False, metadata={"derived": True})

    def __post_init__(self) -> None:
        object.__setattr__(self, "specs", _method_specs(self.methods))
        for spec in self.specs.values():
            method_class(spec)  # an unknown method or a bad option fails now, not after the data is read
        object.__setattr__(self, "strategy", parse_threshold(self.threshold))
        object.__setattr__(self, "brain_mask", str(self.brain_mask))
        object.__setattr__(self, "checkpoints", parse_checkpoints(self.checkpoint))
        object.__setattr__(self, "segmenters", parse_segmenters(self.segmenter))
        check_targets(self.targets)
        self._check()

    def _check(self) -> None:
        if self.layout not in LAYOUT_CHOICES:
            raise ConfigError(f"--layout {self.layout!r} is not a data layout; choose one of {', '.join(LAYOUT_CHOICES)}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be 0 (load in the main thread) or more, got {self.workers}")
        if self.brain_mask not in ("auto", "none") and not Path(self.brain_mask).is_dir():
            raise ConfigError(f"--brain-mask must be auto, none or a folder of brain masks; {self.brain_mask!r} is not a folder")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        check_negative_ratio(self.negative_ratio)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")
        if self.resume and self.out is None:
            raise ConfigError("--resume needs --out: the folder of the run to continue")
        if self.out is not None:
            from ..output.folder import check_output_folder
            from .journal import BENCHMARK_OUTPUT

            check_output_folder(self.out, BENCHMARK_OUTPUT)  # new, empty or a benchmark run's own
            if self.resume and not (Path(self.out) / "run.json").exists():
                raise ConfigError(f"--resume: {str(self.out)!r} holds no benchmark run to continue (run.json is "
                                  "missing); drop --resume to start one")

    @property
    def multi(self) -> bool:
        """Several classifiers: rows are NAME/method and the CSVs have a checkpoint column."""
        return len(self.checkpoints) > 1

    @property
    def method_labels(self) -> list[str]:
        """The methods' canonical names, in the order given."""
        return list(self.specs)

    def to_dict(self) -> dict[str, Any]:
        """Every option as plain values (methods as canonical names, threshold as its spec)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata.get("derived"):
                continue
            v = getattr(self, f.name)
            out[f.name] = v if not isinstance(v, Path) else str(v)
        for key in ("checkpoint", "segmenter"):
            if isinstance(out[key], (list, tuple)):
                out[key] = [str(c) for c in out[key]]
        out["methods"] = self.method_labels
        out["threshold"] = self.strategy.spec
        return out

    def recorded(self) -> dict[str, Any]:
        """The options the results depend on: run.json's config before the run resolves the
        defaults (data and checkpoint paths, folds, device, ...)."""
        d = self.to_dict()
        return {f.name: d[f.name] for f in fields(self) if f.metadata.get("recorded") and not f.metadata.get("derived")}

    @classmethod
    def cli_fields(cls) -> list[Any]:
        """The fields that are command-line options, in declaration order."""
        return [f for f in fields(cls) if "help" in f.metadata]


def _method_specs(methods: str | Sequence[str] | None) -> dict[str, MethodSpec]:
    """Method specs by their canonical label (``hgi-sam``, ``hgi-sam{"stages":[0,1,2,3]}``)."""
    if methods is None:
        texts = list(DEFAULT_METHODS)
    elif isinstance(methods, str):
        texts = split_method_list(methods)
    else:
        texts = [str(m).strip() for m in methods if m and str(m).strip()]
    if not texts:
        raise ConfigError("--methods is empty; give at least one method (see `xaiseg methods`)")
    specs = [parse_method_spec(t) for t in texts]
    labels = [sp.label for sp in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--methods lists a method twice: {','.join(labels)}")
    return dict(zip(labels, specs))


def check_negative_ratio(ratio: float | None) -> None:
    if ratio is not None and not (math.isfinite(ratio) and ratio >= 0):
        raise ConfigError(f"--negative-ratio must be a number >= 0, got {ratio}")
