"""Test guards shared by the bad-input tests."""
from __future__ import annotations

import signal

import pytest


@pytest.fixture
def no_hang():
    """A regression that blocks (say, on a FIFO) fails the test after 30 s instead of hanging."""
    def _timeout(*_):
        raise TimeoutError("blocked (opened a FIFO?)")

    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
