"""xaiseg: explanations of image classifiers as segmentations, scored.

Public API used by plugins and users::

    import xaiseg
    maps = xaiseg.get_method("hgi-sam")(model).attribute(x, target=1)
"""
from ._version import __version__
from .adapters import (ATTENTION, FEATURE_MAP, SHIFTED_WINDOWS, BlockInfo, GlobalAttentionAdapter, HookCapture,
                       ModelAdapter, StageInfo, SwinAdapter, SwinV2Adapter, ViTAdapter, get_adapter, method_supports,
                       methods_for, support_reason)
from .attribution.attention import AttentionPass, AttentionRequest, attention_pass, attention_passes, softmax_backward
from .attribution.shared import SharedPasses, shared_pass, sharing
from .attribution.base import Attribution
from .attribution.maps import input_attribution_to_map, minmax_normalize, upsample
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
from .attribution.targets import normalize_target, select_logits
from .training.checkpoint import LoadedModel, load_model

__all__ = [
    "ATTENTION",
    "FEATURE_MAP",
    "SHIFTED_WINDOWS",
    "GlobalAttentionAdapter",
    "HookCapture",
    "SwinV2Adapter",
    "ViTAdapter",
    "method_supports",
    "methods_for",
    "support_reason",
    "AttentionPass",
    "AttentionRequest",
    "SharedPasses",
    "attention_passes",
    "shared_pass",
    "sharing",
    "Attribution",
    "BlockInfo",
    "MethodInfo",
    "ModelAdapter",
    "StageInfo",
    "SwinAdapter",
    "UnknownNameError",
    "__version__",
    "attention_pass",
    "softmax_backward",
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
