"""Method specs: a registered method name plus keyword options, as one string.

Commands take methods as text (``--methods``, ``--method``); to compare variants of one method
side by side (HGI-SAM with all four stages, Grad-CAM at another layer) a method name may carry
its options as a JSON object::

    hgi-sam
    hgi-sam{"stages": [0, 1, 2, 3]}
    gradcam{"layer": "layers.1.blocks.1.norm1"}

The canonical text (compact JSON, sorted keys) is the variant's name in every table, file and
resume key, so the same options written differently are one method.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..json_options import json_object
from ..registry import UnknownNameError, get_method, list_methods


@dataclass(frozen=True)
class MethodSpec:
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The canonical text: the name alone, or the name and its options as compact JSON."""
        if not self.options:
            return self.name
        return self.name + json.dumps(self.options, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_method_spec(text: str) -> MethodSpec:
    """``name`` or ``name{JSON object}`` → :class:`MethodSpec` (ConfigError if malformed)."""
    text = str(text).strip()
    brace = text.find("{")
    if brace < 0:
        if not text:
            raise ConfigError("empty method name")
        return MethodSpec(text)
    name, raw = text[:brace].strip(), text[brace:]
    if not name:
        raise ConfigError(f"method spec {text!r} has options but no method name")
    return MethodSpec(name, json_object(raw, f"options of {name!r}", '{"stages": [0, 1]}'))


def method_class(spec: MethodSpec) -> type:
    """The registered class of ``spec`` (ConfigError naming the available methods if unknown)."""
    try:
        return get_method(spec.name)
    except UnknownNameError:
        raise ConfigError(f"unknown method {spec.name!r}; available: {', '.join(list_methods())}") from None


def build_method(cls: type, spec: MethodSpec, model: Any, **extra: Any) -> Any:
    """``cls(model, **spec.options, **extra)`` with one-line ConfigErrors naming the variant: a
    wrong option, or a model the method cannot explain."""
    try:
        return cls(model, **{**spec.options, **extra})
    except ConfigError as exc:
        raise ConfigError(f"method {spec.label!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"method {spec.label!r} cannot explain the checkpoint's model: {exc}") from None


def split_method_list(text: str) -> list[str]:
    """Split ``--methods`` at the commas that are not inside an options object or a string."""
    parts, depth, start, quoted, escaped = [], 0, 0, False, False
    for i, ch in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if depth != 0 or quoted:
        raise ConfigError(f"unbalanced braces or quotes in the method list: {text}")
    return [p.strip() for p in parts if p.strip()]
