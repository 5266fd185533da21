"""Options given on the command line as a JSON object (``--model-kwargs``, method options)."""
from __future__ import annotations

import json
from typing import Any

from .errors import ConfigError


def json_object(raw: str, what: str, example: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or a one-line ConfigError naming ``what`` and an example."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: not valid JSON ({exc.msg} at char {exc.pos}): {raw}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: not a JSON object like {example}: {raw}")
    return value
