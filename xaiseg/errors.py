"""Errors that mean "your input is wrong", as opposed to a bug in xaiseg.

The CLI prints these as one line (what is wrong and how to fix it) and exits non-zero without a
traceback; set ``XAISEG_DEBUG=1`` to see the traceback anyway.
"""
from __future__ import annotations


class XaisegError(Exception):
    """Base class of every user-facing error."""


class DataError(XaisegError, ValueError):
    """A data set, file or column is missing, malformed or inconsistent."""


class CheckpointError(XaisegError, ValueError):
    """A checkpoint is missing, corrupt or does not fit the model asked for."""


class ConfigError(XaisegError, ValueError):
    """An option or combination of options is invalid."""


class OutputError(XaisegError):
    """An output cannot be written: the folder is in use or not ours, the disk is full, ..."""
