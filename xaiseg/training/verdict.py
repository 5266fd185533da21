"""Does a checkpoint's classifier detect anything? One verdict, read from its config.json.

A classifier that ends near chance still produces maps, and they look like maps: attention
follows contrast (an untrained Swin's HGI-SAM scored Dice 0.16 on the phantom, DESIGN §6). So a
run whose validation says "near chance" is flagged where its maps are made: ``xaiseg train``
ends with the verdict and stores it in config.json, ``xaiseg explain`` and ``xaiseg benchmark``
print :func:`maps_warning`.
"""
from __future__ import annotations

import math
from typing import Any

CHANCE_AUC = 0.7  # below this validation AUC a run is "near chance"


def _number(metrics: dict[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(float(v)):
        return float(v)
    return None


def checkpoint_verdict(config: dict[str, Any]) -> str | None:
    """Why the classifier of a checkpoint (its config.json as a dict) is near chance, or None when
    its validation figures are fine or unknown (no validation)."""
    metrics = config.get("metrics") or {}
    auc = _number(metrics, "val_auc")
    sens, spec = _number(metrics, "val_sensitivity"), _number(metrics, "val_specificity")
    reasons = []
    if auc is not None and auc < CHANCE_AUC:
        reasons.append(f"validation AUC {auc:.3f} < {CHANCE_AUC}")
    if sens is not None and sens in (0.0, 1.0):
        reasons.append(f"sensitivity {sens:.0f} (it calls {'no' if sens == 0 else 'every'} slice positive)")
    elif spec is not None and spec in (0.0, 1.0) and auc is not None and auc < 0.9:
        reasons.append(f"specificity {spec:.0f}")
    if not reasons:
        return None
    return "near chance: " + ", ".join(reasons)


def maps_warning(config: dict[str, Any]) -> str | None:
    """The one warning line for commands that make maps with this checkpoint, or None."""
    verdict = checkpoint_verdict(config)
    if verdict is None:
        return None
    return (f"warning: this checkpoint's classifier is {verdict}; its maps show image contrast, "
            "not the classifier's evidence for hemorrhage")
