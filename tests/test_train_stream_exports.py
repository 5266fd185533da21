"""The phantom stream draws 8-bit exports more often than the writer; its validation set does not.

An 8-bit export read back has at most 256 grey levels, so after the preprocessor's windows a
slice holds at most 256 distinct pixel values (channel tuples); a slice kept in HU, with its
noise, holds hundreds more at 64 px. The share is counted from the images, not from the code's
own acquisition records.
"""
from __future__ import annotations

import math

import numpy as np

from xaiseg.data.phantom_acquisition import WINDOW8_SHARE
from xaiseg.data.preprocess import Preprocessor
from xaiseg.training.curriculum import Curriculum
from xaiseg.training.sources import STREAM_WINDOW8_SHARE, PhantomStream, phantom_validation_set

N = 400


def _share_8bit(images) -> float:
    levels = [np.unique(np.asarray(x).reshape(x.shape[0], -1), axis=1).shape[1] for x in images]
    return float(np.mean([n <= 256 for n in levels]))


def _close(share: float, p: float) -> bool:
    return abs(share - p) < 4 * math.sqrt(p * (1 - p) / N)  # binomial, 4 sd


def test_stream_exports_8bit_at_its_share_and_validation_at_the_writers():
    assert STREAM_WINDOW8_SHARE - WINDOW8_SHARE > 0.2  # else the test could not tell them apart
    prep = Preprocessor(64)
    stream = PhantomStream(seed=5, start=0, stop=1, total_steps=1, batch_size=N, preprocessor=prep, render_size=64,
                           prevalence=0.5, curriculum=Curriculum(1.0, 0.0, 0.0))  # off: realistic, full strength
    x, _ = stream.batch(0)
    assert _close(_share_8bit(x), STREAM_WINDOW8_SHARE)
    xv, _ = phantom_validation_set(seed=5, n=N, preprocessor=prep, render_size=64, prevalence=0.5)
    assert _close(_share_8bit(xv), WINDOW8_SHARE)
