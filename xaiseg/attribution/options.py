"""Checking a method's options against the annotations of the code that takes them.

Options arrive as JSON (``--methods 'integrated-gradients{"n_steps": 8}'``) or keywords. A
wrong type must be a one-line error when the method is built, not a failure deep inside captum
or the grad-cam package on the first batch, so every option is checked against the annotation
of the parameter that receives it: xaiseg's own ``__init__`` keywords or the wrapped library's.
Only annotations that say something checkable are used (int, float, bool, str, None, unions,
Literal, tuples and lists of those); anything else (tensors, callables, type variables) passes.
"""
from __future__ import annotations

import collections.abc
import inspect
import numbers
import typing
from typing import Any, Callable

from ..errors import ConfigError


def parameter_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """Parameter name -> annotation of ``func`` (evaluated where possible, else left out)."""
    try:
        return dict(typing.get_type_hints(func))
    except Exception:  # a forward reference that cannot be resolved: use what is already an object
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):
            return {}
        return {p.name: p.annotation for p in params
                if p.annotation is not inspect.Parameter.empty and not isinstance(p.annotation, str)}


def _fits(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` fits ``hint``; None when the hint says nothing checkable."""
    if hint is Any or isinstance(hint, typing.TypeVar):
        return None
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin is typing.Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType"):
        verdicts = [_fits(value, a) for a in typing.get_args(hint)]
        return None if None in verdicts and True not in verdicts else any(v is True for v in verdicts)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (tuple, list, collections.abc.Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(hint)
        if not args:
            return True
        if origin is not tuple or (len(args) == 2 and args[1] is Ellipsis):  # list[X], Sequence[X], tuple[X, ...]
            each = [args[0]] * len(value)
        elif len(args) != len(value):
            return False
        else:
            each = list(args)
        verdicts = [_fits(v, a) for v, a in zip(value, each)]
        return None if None in verdicts else all(verdicts)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return None


def describe(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "")


def check_types(owner: str, options: dict[str, Any], hints: dict[str, Any]) -> None:
    """ConfigError for the first option whose value does not fit its parameter's annotation."""
    for key, value in options.items():
        if key in hints and _fits(value, hints[key]) is False:
            raise ConfigError(f"option {key} of {owner} must be {describe(hints[key])}, got {value!r}")


def check_positive(owner: str, options: dict[str, Any], names: tuple[str, ...]) -> None:
    """ConfigError for any of ``names`` given as a number below 1 (counts and batch sizes)."""
    for key in names:
        value = options.get(key)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 1:
            raise ConfigError(f"option {key} of {owner} must be at least 1, got {value!r}")
