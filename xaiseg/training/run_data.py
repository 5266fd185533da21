"""The data of a training run: where its batches come from and what it is validated on.

- :func:`phantom_data`: fresh phantom slices every step (``--data phantom``, or a folder written
  by ``xaiseg phantom``: see phantom_source), validated on a fixed seeded stream set or on the
  folder's slices;
- :func:`disk_data`: the slices of a data set on disk, split by subject.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..distributed import World
from ..errors import DataError
from .curriculum import Curriculum


@dataclass
class RunData:
    train_batches: Callable[[int], Any]  # epoch -> iterable of (x, y)
    val_batches: Callable[[], Any]
    has_val: bool
    steps_per_epoch: int
    total_steps: int
    info: dict[str, Any]  # the data summary stored in config.json
    # epoch -> per step, how many of this rank's slices count (None: all of them; see ddp.shard)
    train_counts: Callable[[int], list[int] | None] = lambda epoch: None


def _tensor_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


def _folder_validation(cfg: Any, preprocessor: Any, loader_kw: dict, log: Callable[[str], None]):
    """Every slice of a written phantom folder (none is trained on: the stream trains)."""
    from .sources import SliceDataset, open_training_data

    ds = open_training_data(cfg.data, "physionet")
    records = list(ds.records)[: cfg.limit] if cfg.limit else list(ds.records)
    va_ds = SliceDataset(ds, range(len(records)), preprocessor, seed=cfg.seed, augment=False)
    positives = int(sum(float(np.asarray(r.labels)[-1]) > 0.5 for r in records))

    def val_batches():
        return torch.utils.data.DataLoader(va_ds, batch_size=max(cfg.batch_size, 64), shuffle=False, **loader_kw)

    return val_batches, len(records), positives


def phantom_data(cfg: Any, preprocessor: Any, input_size: int, curriculum: Curriculum, loader_kw: dict,
                 log: Callable[[str], None], world: World = World()) -> RunData:
    from .sources import PhantomStream, phantom_validation_set

    render_size = cfg.render_size or input_size
    steps_per_epoch = cfg.steps_per_epoch
    total_steps = cfg.epochs * steps_per_epoch
    randomise = cfg.stream_acquisition() == "random"
    if cfg.data == "phantom" and not world.is_main:  # rank 0 alone validates
        val_batches, val_n, val_pos, val_what = list, 0, 0, ""
    elif cfg.data == "phantom":
        xv, yv = phantom_validation_set(seed=cfg.seed, n=cfg.val_size, preprocessor=preprocessor, render_size=render_size,
                                        prevalence=cfg.prevalence, progress=cfg.progress, randomise=randomise)
        val_n, val_pos = len(yv), int((yv[:, -1] > 0.5).sum())

        def val_batches():
            return _tensor_batches(xv, yv, max(cfg.batch_size, 64))

        val_what = f"{val_n} fixed realistic stream slices"
    else:
        val_batches, val_n, val_pos = _folder_validation(cfg, preprocessor, loader_kw, log)
        val_what = f"all {val_n} slices of {cfg.data} (written by `xaiseg phantom`; training uses fresh slices of its generator)"

    def train_batches(epoch: int):
        stream = PhantomStream(seed=cfg.seed, start=epoch * steps_per_epoch, stop=(epoch + 1) * steps_per_epoch,
                               total_steps=total_steps, batch_size=cfg.batch_size, preprocessor=preprocessor,
                               render_size=render_size, prevalence=cfg.prevalence, curriculum=curriculum,
                               randomise=randomise, world=world)
        return torch.utils.data.DataLoader(stream, batch_size=None, **loader_kw)

    info = {"source": "phantom-stream", "acquisition": "random" if randomise else "clean", "render_size": render_size,
            "validation": "stream" if cfg.data == "phantom" else cfg.data, "val_size": val_n, "val_positives": val_pos,
            "prevalence": cfg.prevalence}
    log(f"data: phantom stream ({info['acquisition']} acquisition), {cfg.batch_size} fresh slices per step, "
        f"{steps_per_epoch} steps per epoch; validation: {val_what} ({val_pos} positive)"
        + (f"; curriculum: lesion scale {curriculum.start} for {curriculum.hold:.0%} of the run, "
           f"shrinking to 1 over {curriculum.shrink:.0%}" if curriculum.active else ""))
    return RunData(train_batches, val_batches, True, steps_per_epoch, total_steps, info)


def _known_records(cfg: Any, ds: Any, log: Callable[[str], None]) -> tuple[list, list[int]]:
    records = list(ds.records)[: cfg.limit] if cfg.limit else list(ds.records)
    # A NaN label means "not known" (e.g. a partial RSNA CSV): such slices cannot be trained on.
    need = slice(-1, None) if cfg.task == "binary" else slice(None)
    known = [i for i, r in enumerate(records) if not np.isnan(np.asarray(r.labels, dtype=float)[need]).any()]
    if len(known) < len(records):
        log(f"skipping {len(records) - len(known)} slices whose {cfg.task} labels are unknown (NaN)")
    if not known:
        raise DataError(f"no slice of {cfg.data!r} has known {cfg.task} labels")
    return records, known


def disk_data(cfg: Any, preprocessor: Any, input_size: int, curriculum: Curriculum, loader_kw: dict,
              log: Callable[[str], None], world: World = World()) -> RunData:
    from .ddp import ShardSampler
    from .sources import (EpochSampler, SliceDataset, balanced_weights, epoch_order, open_training_data, subject_split,
                          volume_buffered)

    ds = open_training_data(cfg.data, cfg.layout, skip_bad=cfg.skip_bad)
    skipped = list(getattr(ds, "skipped", []))
    if skipped:
        from ..data.base import skipped_summary

        log(skipped_summary(skipped))
    records, known = _known_records(cfg, ds, log)
    train_subj, val_subj = subject_split([records[i].subject for i in known], cfg.val_fraction, cfg.seed)
    tr_idx = [i for i in known if str(records[i].subject) in train_subj]
    va_idx = [i for i in known if str(records[i].subject) in val_subj]
    tr_ds = SliceDataset(ds, tr_idx, preprocessor, seed=cfg.seed, augment=cfg.augment)
    va_ds = SliceDataset(ds, va_idx, preprocessor, seed=cfg.seed, augment=False)
    any_tr = np.array([float(np.asarray(records[i].labels)[-1]) for i in tr_idx])
    weights = balanced_weights(any_tr) if cfg.balanced else None
    steps_per_epoch = -(-len(tr_idx) // cfg.batch_size)

    subject_of = [str(records[i].subject) for i in tr_idx]
    buffer = getattr(getattr(ds, "_cache", None), "maxsize", 4)  # volumes the data set's cache holds

    @functools.lru_cache(maxsize=1)  # the loader and train_counts of an epoch share one order
    def sampler(epoch: int) -> Any:
        order = volume_buffered(epoch_order(len(tr_idx), epoch, cfg.seed, weights), subject_of, buffer, epoch, cfg.seed)
        batches = EpochSampler(order, epoch, cfg.batch_size)  # the global batches
        return ShardSampler(batches, world) if world.distributed else batches

    def train_batches(epoch: int):
        return torch.utils.data.DataLoader(tr_ds, batch_sampler=sampler(epoch), **loader_kw)

    def train_counts(epoch: int) -> list[int] | None:
        return sampler(epoch).counts() if world.distributed else None

    def val_batches():
        return torch.utils.data.DataLoader(va_ds, batch_size=max(cfg.batch_size, 64), shuffle=False, **loader_kw)

    info = {"source": cfg.data, "layout": cfg.layout, "train_slices": len(tr_idx), "val_slices": len(va_idx),
            "train_subjects": sorted(train_subj), "val_subjects": sorted(val_subj),
            "train_positives": int(any_tr.sum())}
    log(f"data: {cfg.layout} {cfg.data}: {len(tr_idx)} training slices ({int(any_tr.sum())} positive) from "
        f"{len(train_subj)} subjects, {len(va_idx)} validation slices from {len(val_subj)} subjects"
        + (", class-balanced sampling" if cfg.balanced else ""))
    return RunData(train_batches, val_batches, len(va_idx) > 0, steps_per_epoch, cfg.epochs * steps_per_epoch, info,
                   train_counts)
