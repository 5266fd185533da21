"""Which methods can explain which models: one rule, used when a method is built, by the
benchmark's default method list and by ``xaiseg methods``.

A method declares ``requires`` (adapter capabilities such as ``attention``) and optionally
``architectures`` (an allow-list of adapter names). With neither, it is model-agnostic and
takes any ``nn.Module`` classifier. Otherwise the model's adapter must be one of the listed
architectures (if any are listed) and provide every required capability.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from .base import ModelAdapter


def _method_class(method: Any) -> type:
    if isinstance(method, str):
        from ..registry import get_method

        return get_method(method)
    return method if isinstance(method, type) else type(method)


def model_agnostic(method: Any) -> bool:
    cls = _method_class(method)
    return not getattr(cls, "requires", ()) and not getattr(cls, "architectures", ())


def support_reason(method: Any, model: nn.Module | ModelAdapter | type[ModelAdapter] | None) -> str | None:
    """None if ``method`` (a class, an instance or a registered name) can explain ``model`` (a
    module, an adapter or an adapter class), else one sentence saying why not."""
    cls = _method_class(method)
    label = getattr(cls, "name", "") or cls.__name__
    if model_agnostic(cls):
        return None
    adapter: Any = model
    if isinstance(model, nn.Module):
        from . import get_adapter

        try:
            adapter = get_adapter(model)
        except TypeError as exc:
            return f"{label} needs a model xaiseg can read inside: {exc}"
    if adapter is None:
        return f"{label} needs a model xaiseg can read inside"
    arch = adapter.architecture
    allowed = tuple(getattr(cls, "architectures", ()))
    if allowed and arch not in allowed:
        return f"{label} supports {', '.join(allowed)} models, not {arch}"
    missing = sorted(set(getattr(cls, "requires", ())) - set(adapter.capabilities))
    if missing:
        return f"{label} needs {', '.join(missing)}, which {arch} models do not have"
    return None


def method_supports(method: Any, model: nn.Module | ModelAdapter | type[ModelAdapter]) -> bool:
    """Whether ``method`` can explain ``model`` (see :func:`support_reason`)."""
    return support_reason(method, model) is None


def methods_for(model: nn.Module | ModelAdapter, names: Sequence[str] | None = None) -> list[str]:
    """The registered method names (default: every one, families expanded) that can explain ``model``."""
    from ..registry import list_methods

    return [n for n in (list_methods() if names is None else names) if method_supports(n, model)]


def unsupported(methods: Mapping[str, Any], model: nn.Module | ModelAdapter) -> dict[str, str]:
    """Label -> reason for each of ``methods`` (label -> class or name) that cannot explain ``model``."""
    reasons = {label: support_reason(m, model) for label, m in methods.items()}
    return {label: why for label, why in reasons.items() if why is not None}


def supported_families(method: Any) -> list[str]:
    """Architecture names of the installed adapters ``method`` supports (``["any"]`` if model-agnostic)."""
    from . import adapter_classes

    if model_agnostic(method):
        return ["any"]
    return [a.architecture for a in adapter_classes() if method_supports(method, a)]
