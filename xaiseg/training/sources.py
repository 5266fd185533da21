"""Where training slices come from: a data set on disk, or the phantom rendered on the fly.

Every random choice is a pure function of ``(seed, epoch or step, position)`` rather than of a
running generator, so a run resumed at an epoch boundary sees exactly the batches the
uninterrupted run would have seen, whatever the number of loader workers.

Slices always arrive as ``(image, labels)``: image (C, S, S) float32 in [0, 1] (CT windows,
resized by :class:`xaiseg.data.preprocess.Preprocessor`), labels (6,) in ``LABELS`` order.
The ground-truth mask is never handed to the classifier (weak supervision).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from ..data.phantom_acquisition import WINDOW8_SHARE
from ..distributed import World
from ..errors import DataError
from .curriculum import Curriculum
from .ddp import shard_size

# The stream draws 8-bit exports more often than the writer (0.35): a clipped skull as bright as
# blood is what the defaults missed most on the selection draw (docs/training.md, w8 runs).
STREAM_WINDOW8_SHARE = 0.6


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


# ------------------------------------------------------------------------------------------------
# phantom


def render_phantom_sample(
    rng: np.random.Generator,
    preprocessor: Any,
    render_size: int,
    prevalence: float,
    lesion_scale: float,
    realism: float = 1.0,
    randomise: bool = True,
    window8_share: float = WINDOW8_SHARE,
) -> tuple[np.ndarray, np.ndarray]:
    """One fresh phantom slice -> (windowed image, labels), drawn the way the phantom writer
    builds its volumes: a new head and, with ``randomise``, a new randomised acquisition
    (domain randomisation: field of view, artefacts, noise, HU calibration, 8-bit export); with
    probability ``prevalence`` one to three lesions (each at its subtype's usual level) and a
    slice level inside one lesion's extent, anywhere from its middle to its thin ends; otherwise
    no lesion and a level anywhere from skull base to vertex. The labels come from the rendered
    mask (a lesion can miss the slice: then it is negative).

    ``realism`` < 1 (the curriculum's early phase) makes it easier: positive slices pass closer
    to a lesion's middle (within ``0.35 + 0.65 * realism`` of its half-height), negative ones
    avoid the skull base and vertex (``z`` in ``[0.1, 0.9]`` at realism 0) and the acquisition's
    artefacts are milder (strength ``0.25 + 0.75 * realism``). ``window8_share`` is the chance
    of an 8-bit export (by default the writer's, so a validation set looks like a written phantom).
    """
    from ..data.phantom import render, sample_acquisition, sample_head
    from ..data.phantom_lesions import draw_lesions

    head = sample_head(rng)
    lesions = []
    if rng.random() < prevalence:
        lesions = draw_lesions(rng, head, lesion_scale)
        hit = lesions[int(rng.integers(len(lesions)))]
        spread = 0.35 + 0.65 * realism
        z = float(np.clip(hit.zc + rng.uniform(-spread, spread) * hit.hz, 0.0, 1.0))
    else:
        margin = 0.1 * (1.0 - realism)
        z = float(rng.uniform(margin, 1.0 - margin))
    acq = sample_acquisition(rng, 0.25 + 0.75 * realism, window8_share) if randomise else None
    sl = render(head, lesions, z, rng, size=render_size, acquisition=acq)
    image = preprocessor(sl.hu)[0]
    return np.asarray(image, dtype=np.float32), np.asarray(sl.labels, dtype=np.float32)


class PhantomStream(IterableDataset):
    """Fresh phantom batches, one per optimiser step, for steps ``[start, stop)``.

    Batch ``s`` depends only on ``(seed, s)``: with W loader workers, worker w renders the steps
    ``s ≡ w (mod W)`` and the loader's round-robin returns them in order. Under torchrun
    (``world`` of N > 1 processes) rank r renders its ``shard_size`` slices of each global batch from its
    own seeded part of the stream, ``(seed, s, N, r)``: the ranks never draw the same slice.
    """

    def __init__(
        self,
        *,
        seed: int,
        start: int,
        stop: int,
        total_steps: int,
        batch_size: int,
        preprocessor: Any,
        render_size: int,
        prevalence: float,
        curriculum: Curriculum,
        randomise: bool = True,
        world: World = World(),
    ) -> None:
        self.seed, self.start, self.stop, self.total_steps = seed, start, stop, total_steps
        self.world = world
        self.batch_size, self.preprocessor, self.render_size = batch_size, preprocessor, render_size
        self.prevalence, self.curriculum, self.randomise = prevalence, curriculum, randomise

    def __len__(self) -> int:
        return self.stop - self.start

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.curriculum.scale(step, self.total_steps)
        realism = self.curriculum.realism(step, self.total_steps)
        w = self.world
        if not w.distributed:
            rng, n = _rng(self.seed, 1, step), self.batch_size
        else:  # rank + 1: numpy's seed sequences ignore a trailing 0, which would merge two keys
            rng, n = _rng(self.seed, 1, step, w.size, w.rank + 1), shard_size(self.batch_size, w)
        xs, ys = zip(*(render_phantom_sample(rng, self.preprocessor, self.render_size, self.prevalence, scale, realism,
                                                 self.randomise, STREAM_WINDOW8_SHARE)
                       for _ in range(n)))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + wid, self.stop, nw):
            yield self.batch(step)


def phantom_validation_set(
    *, seed: int, n: int, preprocessor: Any, render_size: int, prevalence: float, progress: bool = False,
    randomise: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of ``n`` realistic (``lesion_scale`` 1) phantom slices, independent of the
    training stream's draws (its own seed stream)."""
    from ..progress import progress_bar

    rng = _rng(seed, 2)
    xs, ys = [], []
    for _ in progress_bar(range(n), desc="phantom validation set", leave=False, enabled=progress):
        x, y = render_phantom_sample(rng, preprocessor, render_size, prevalence, 1.0, 1.0, randomise)
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


# ------------------------------------------------------------------------------------------------
# data sets on disk


def subject_split(subjects: Sequence[str], val_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Split subject ids into (train, val) sets; every slice of a subject goes to one side."""
    uniq = sorted(set(map(str, subjects)))
    if val_fraction <= 0:
        return set(uniq), set()
    if len(uniq) < 2:
        raise DataError(f"a subject-wise validation split needs >= 2 subjects, the data set has {len(uniq)}; use --val-fraction 0")
    n_val = min(len(uniq) - 1, max(1, round(val_fraction * len(uniq))))
    order = _rng(seed, 3).permutation(len(uniq))
    val = {uniq[i] for i in order[:n_val]}
    return set(uniq) - val, val


def balanced_weights(any_labels: np.ndarray) -> np.ndarray:
    """Sampling probabilities that give positive and negative slices equal total weight."""
    y = np.asarray(any_labels) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError("class-balanced sampling needs both positive and negative slices in the training split")
    w = np.where(y, 0.5 / n_pos, 0.5 / n_neg)
    return w / w.sum()


def epoch_order(n: int, epoch: int, seed: int, weights: np.ndarray | None = None) -> np.ndarray:
    """The slice order of one epoch: a permutation, or ``n`` weighted draws with replacement."""
    rng = _rng(seed, 4, epoch)
    if weights is None:
        return rng.permutation(n)
    return rng.choice(n, size=n, replace=True, p=weights)


def volume_buffered(order: np.ndarray, subject_of: Sequence[str], buffer: int, epoch: int, seed: int) -> np.ndarray:
    """The same draws as ``order``, reordered so a volume is decoded once per epoch: subjects in a
    random order, taken ``buffer`` at a time, the draws of each group of subjects shuffled together.

    Why: a slice's volume is decoded whole (NIfTI), and a global shuffle visits every volume
    once per slice, far more often than a small volume cache can hold them; shuffling within a
    buffer of ``buffer`` volumes (at most what the data set's cache keeps) mixes subjects in every
    batch and decodes each once."""
    rng = _rng(seed, 5, epoch)
    by_subject: dict[str, list[int]] = {}
    for p in order:
        by_subject.setdefault(str(subject_of[int(p)]), []).append(int(p))
    subjects = sorted(by_subject)
    out: list[int] = []
    perm = [subjects[k] for k in rng.permutation(len(subjects))]
    for start in range(0, len(perm), max(1, buffer)):
        group = np.array([p for subj in perm[start : start + buffer] for p in by_subject[subj]], dtype=np.int64)
        out.extend(group[rng.permutation(len(group))].tolist())
    return np.asarray(out, dtype=np.int64)


class SliceDataset(Dataset):
    """Slices of an ``xaiseg.data`` data set, windowed and resized; optional left-right flips.

    Items are indexed by ``(position_in_subset, epoch, draw)`` so the flip of a draw is fixed by
    ``(seed, epoch, draw)``.
    """

    def __init__(self, dataset: Any, indices: Sequence[int], preprocessor: Any, *, seed: int, augment: bool) -> None:
        self.dataset, self.indices = dataset, list(indices)
        self.preprocessor, self.seed, self.augment = preprocessor, seed, augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        pos, epoch, draw = key if isinstance(key, tuple) else (key, -1, -1)
        item = self.dataset[self.indices[pos]]
        image = np.asarray(self.preprocessor(np.asarray(item["image"], dtype=np.float32))[0], dtype=np.float32)
        if self.augment and epoch >= 0 and _rng(self.seed, 5, epoch, draw).random() < 0.5:
            image = image[..., ::-1]  # left-right: hemorrhage occurs on either side
        labels = np.asarray(item["labels"], dtype=np.float32)
        if labels.shape != (6,):
            raise DataError(f"slice labels must have 6 entries (LABELS order), got shape {labels.shape}")
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(labels)


@dataclass
class EpochSampler:
    """Batch sampler yielding ``(pos, epoch, draw)`` keys for one epoch of a SliceDataset."""

    order: np.ndarray
    epoch: int
    batch_size: int
    drop_last: bool = False

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        keys = [(int(p), self.epoch, i) for i, p in enumerate(self.order)]
        for i in range(0, len(keys), self.batch_size):
            b = keys[i : i + self.batch_size]
            if self.drop_last and len(b) < self.batch_size:
                return
            yield b

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def open_training_data(path: str, layout: str, skip_bad: bool = False) -> Any:
    """Open a data set with ``xaiseg.data.open_dataset``; errors stay one-line DataErrors, or with
    ``skip_bad`` bad files are left out and listed in the data set's ``skipped``."""
    from ..data import open_dataset

    return open_dataset(path, layout=layout, skip_bad=skip_bad)
