"""xaiseg: explanations of image classifiers as segmentations, scored.

Public API used by plugins and users::

    import xaiseg
    maps = xaiseg.get_method("hgi-sam")(model).attribute(x, target=1)
"""
from ._version import __version__
from .adapters import BlockInfo, ModelAdapter, StageInfo, SwinAdapter, get_adapter
from .attention import AttentionPass, attention_pass
from .attribution import Attribution
from .maps import input_attribution_to_map, minmax_normalize, upsample
from .registry import (
    MethodInfo,
    UnknownNameError,
    get_method,
    get_metric,
    get_threshold,
    list_methods,
    list_metrics,
    list_thresholds,
    method_info,
)
from .targets import normalize_target, select_logits
from .training.checkpoint import LoadedModel, load_model

__all__ = [
    "AttentionPass",
    "Attribution",
    "BlockInfo",
    "MethodInfo",
    "ModelAdapter",
    "StageInfo",
    "SwinAdapter",
    "UnknownNameError",
    "__version__",
    "attention_pass",
    "get_adapter",
    "get_method",
    "get_metric",
    "get_threshold",
    "input_attribution_to_map",
    "LoadedModel",
    "load_model",
    "list_methods",
    "list_metrics",
    "list_thresholds",
    "method_info",
    "minmax_normalize",
    "normalize_target",
    "select_logits",
    "upsample",
]
