"""run.json and the resume key: what a run records about itself, and how a run in an existing
output folder is continued (or refused).

The resume key is the sha256 of run.json's config without the device (CPU results are
deterministic; on CUDA some kernels are not, see docs), plus the data fingerprint, the
checkpoint's hash and the selected slice ids. It is computed exactly as before the runner was
split into stages, so runs started by older versions still resume.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..output.atomic import write_json
from ..errors import ConfigError
from ..output.folder import Owner
from ..metrics import Metric
from . import provenance
from .config import BenchmarkConfig
from .inputs import Classifier, Inputs
from .select import Selection
from .store import RunStore


@dataclass(frozen=True)
class RunRecord:
    """run.json's ``config`` and what identifies the run's results."""

    config: dict[str, Any]
    config_key: str
    data_fingerprint: str
    checkpoint_sha256: str


def describe_run(cfg: BenchmarkConfig, inputs: Inputs, selection: Selection, metrics: Sequence[Metric],
                 device: torch.device, negative_ratio: float | None, segmenters: Sequence[Any] = ()) -> RunRecord:
    """The recorded options with the defaults the run resolved (data and checkpoint paths, the
    layout, the folds, the negative ratio, the device) and what the classifiers are. With one
    classifier and ``--targets any`` the record (hence the resume key) is what it was before a
    run could hold several; with several, every per-classifier entry is keyed by its name."""
    config = cfg.recorded() | {
        "data": None if inputs.data_path is None else str(inputs.data_path), "layout": inputs.layout,
        "folds": selection.k, "negative_ratio": negative_ratio, "device": str(device),
        "skip_bad": bool(cfg.skip_bad),
    }
    config |= {"metrics": [m.name for m in metrics]} | _classifier_entries(inputs.classifiers)
    config |= {"skipped": list(getattr(inputs.dataset, "skipped", []))}
    if cfg.targets != "any":
        config["targets"] = cfg.targets
    if segmenters:  # absent without --segmenter: the record of a run without one is unchanged
        config["segmenter"] = {p.label: str(p.path) for p in segmenters}
        config["segmenter_sha256"] = {p.label: p.sha256 for p in segmenters}
    if inputs.embedded:
        from .defaults import DEFAULT_PHANTOM

        config["phantom"] = dict(DEFAULT_PHANTOM)
    records = inputs.records
    truth_of = getattr(inputs.dataset, "truth_files", None)  # a dataset passed in may not have it
    subjects = sorted(set(selection.subject_of.values()))
    truth = [p for s in subjects for p in (truth_of(s) if truth_of else ())]
    fingerprint = provenance.data_fingerprint([records[i] for i in selection.slice_ids], truth_files=truth)
    ck_sha = _checkpoints_sha256(inputs.classifiers)
    key_src = {k: v for k, v in config.items() if k != "device"} | {
        "data_fingerprint": fingerprint, "checkpoint_sha256": ck_sha, "slices": selection.slice_ids}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True, default=str).encode()).hexdigest()
    return RunRecord(config, key, fingerprint, ck_sha)


def _classifier_entries(classifiers: Sequence[Classifier]) -> dict[str, Any]:
    """checkpoint, model, task, target_index: plain values for one classifier, {name: value}
    for several."""
    def entry(ck: Classifier) -> dict[str, Any]:
        c = ck.config
        return {"checkpoint": None if ck.checkpoint_dir is None else str(ck.checkpoint_dir),
                "model": c.get("model") or c.get("preset") or c.get("timm_name"), "task": ck.task,
                "target_index": ck.target}

    if len(classifiers) == 1:
        return entry(classifiers[0])
    per = {ck.name: entry(ck) for ck in classifiers}
    return {k: {name: e[k] for name, e in per.items()} for k in ("checkpoint", "model", "task", "target_index")}


def _checkpoints_sha256(classifiers: Sequence[Classifier]) -> str:
    if len(classifiers) == 1:
        return classifiers[0].checkpoint_sha256
    text = ";".join(f"{ck.name}:{ck.checkpoint_sha256}" for ck in classifiers)
    return hashlib.sha256(text.encode()).hexdigest()


# run.json of any version (the .xaiseg.json marker is newer): the folder is the benchmark's own
BENCHMARK_OUTPUT = Owner("xaiseg benchmark", (("run.json", lambda r: isinstance(r, dict) and "config_key" in r
                                                                and "status" in r),))


@dataclass
class Journal:
    """The output folder of a run being computed: its store, run.json, and the (method, batch)
    units an earlier attempt finished."""

    out_dir: Path
    store: RunStore
    meta: dict[str, Any]
    done: set[tuple[str, int]] = field(default_factory=set)

    @property
    def run_json(self) -> Path:
        return self.out_dir / "run.json"

    def write(self, **updates: Any) -> None:
        self.meta.update(updates)
        write_json(self.run_json, self.meta, default=str)

    def failed(self, exc: BaseException) -> None:
        """Record that this attempt did not finish (``--resume`` continues it)."""
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.write(status="failed" if isinstance(exc, Exception) else "interrupted", error=why,
                   finished=_dt.datetime.now().isoformat(timespec="seconds"))


@dataclass(frozen=True)
class Completed:
    """An output folder whose run is already complete: its summary and files."""

    summary: dict[str, Any]
    paths: dict[str, Path]


def open_journal(cfg: BenchmarkConfig, out_dir: Path, store: RunStore, record: RunRecord, inputs: Inputs,
                 selection: Selection, labels: Sequence[str], processes: int = 1) -> Journal | Completed:
    """Start the run in ``out_dir``, or continue the one there (``--resume``, same key and
    number of ``processes``), or return it when it is already complete; anything else is a
    one-line error."""
    attempts, done = 1, set()
    run_json = out_dir / "run.json"
    if run_json.exists() or store.csv_path.exists():
        if not cfg.resume:
            raise ConfigError(f"{out_dir} already holds a benchmark run; pass --resume to continue it or choose another --out")
        try:
            old = json.loads(run_json.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{out_dir}/run.json is missing or unreadable; cannot resume, choose another --out") from None
        if old.get("config_key") != record.config_key:
            raise ConfigError(f"{out_dir} holds a run with a different configuration or data; cannot resume it with these options")
        if old.get("status") == "complete" and (out_dir / "summary.json").exists():
            return _completed(cfg, out_dir)
        _same_processes(out_dir, int(old.get("processes", 1)), processes)
        attempts = int(old.get("attempts", 1)) + 1
        done = store.recover(labels, selection.slice_ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    store.start()
    meta = {
        "status": "running", "started": _dt.datetime.now().isoformat(timespec="seconds"), "config": record.config,
        "config_key": record.config_key, "data_fingerprint": record.data_fingerprint,
        "checkpoint_sha256": record.checkpoint_sha256, "checkpoint_config": inputs.classifier.config if len(inputs.classifiers) == 1 else
        {ck.name: ck.config for ck in inputs.classifiers},
        "versions": provenance.versions(),
        "seeds": {"benchmark": cfg.seed, "per_unit": "crc32(seed:method:batch)", "folds": cfg.seed},
        "n_slices": len(selection.slice_ids), "n_batches": len(selection.batches), "resumed": attempts > 1,
        "attempts": attempts, "processes": processes,  # not in the key: the results do not depend on it
    }
    journal = Journal(out_dir, store, meta, done)
    journal.write()
    return journal


def _same_processes(out_dir: Path, started: int, now: int) -> None:
    """Each process continues its own shard's journal: a run resumes with the processes it began with."""
    if started == now:
        return
    how = "without torchrun" if started == 1 else f"with torchrun and {started} processes in all (e.g. --nproc-per-node {started})"
    raise ConfigError(f"{out_dir} was started by {started} process(es), this is {now}; resume it {how}")


def _completed(cfg: BenchmarkConfig, out_dir: Path) -> Completed:
    if cfg.save_maps and not (out_dir / "maps").is_dir():
        # the maps of a finished run are gone with its cache; nothing can write them now
        raise ConfigError(f"{out_dir} is complete and was run without --save-maps; to get its maps, "
                          "run it again with --save-maps into another --out")
    summary = json.loads((out_dir / "summary.json").read_text())
    if cfg.progress:
        print(f"{out_dir}: this run is already complete; nothing to resume", flush=True)
    # the keys of a fresh run: summary.csv -> summary_csv, run.json -> run_json, ...
    paths = {p.name.replace(".", "_"): p for p in out_dir.glob("*.*") if p.is_file() and not p.name.startswith(".")}
    return Completed(summary, paths)
