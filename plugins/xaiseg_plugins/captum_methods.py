"""captum's input attributions as xaiseg methods (``captum:<ClassName>`` and short names).

Any ``captum.attr`` class built from the model alone (``Cls(model)``) can be used as
``captum:<ClassName>``; the family lists those checked on timm Swin and ViT. These methods only
call the model, so they take any image classifier ``nn.Module`` (model-agnostic). captum computes the
attribution (B, C, H, W) for the target logit of each image, and
:func:`xaiseg.attribution.maps.input_attribution_to_map` turns it into the map: absolute value summed over
channels, then per-image min–max.

Options are passed through by name: those of the class's constructor (e.g.
``multiply_by_inputs``) to the constructor, those of its ``attribute`` (``baselines``,
``n_steps``, ``method``, ``internal_batch_size``, ``sliding_window_shapes``, ``strides``,
``perturbations_per_eval``, ``feature_mask``, …) to ``attribute``. Defaults that depend on the
input size (Occlusion's window, FeatureAblation's feature mask) are documented in
docs/plugins.md; anything else is captum's default. Every option is checked when the method is
built, by name and against the annotation of captum's parameter (``n_steps`` must be an int, and
at least 1), so a wrong one is a one-line error before any image is explained.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

from xaiseg import Attribution, input_attribution_to_map, select_logits
from xaiseg.errors import ConfigError
from xaiseg.attribution.options import check_positive, parameter_hints

LISTED = ("Saliency", "InputXGradient", "IntegratedGradients", "Occlusion", "FeatureAblation")
GRADIENT_FREE = {"Occlusion", "FeatureAblation", "FeaturePermutation", "ShapleyValueSampling",
                 "ShapleyValues", "Lime", "KernelShap"}
UNSUPPORTED = {
    "DeepLift": "its rules assume ReLU-like networks; a transformer's attention products and GELUs break them",
    "DeepLiftShap": "its rules assume ReLU-like networks; a transformer's attention products and GELUs break them",
    "LRP": "has no rules for a transformer's attention, LayerNorm and GELU modules",
    "NoiseTunnel": "wraps another captum method (not built from the model alone)",
    "GuidedGradCam": "needs a convolutional layer; use gradcam for transformers",
}
# Counts and batch sizes that captum asserts (or loops on) only when attributing.
POSITIVE = ("n_steps", "n_samples", "internal_batch_size", "perturbations_per_eval")
# Methods that only change the backward pass of nn.ReLU modules: on a model without any they
# silently equal plain gradients, which would mislabel a benchmark row.
RELU_ONLY = {"GuidedBackprop", "Deconvolution"}


def _captum_class(name: str) -> type:
    import captum.attr

    if name in UNSUPPORTED:
        raise ConfigError(f"captum:{name} is not supported: {UNSUPPORTED[name]}")
    cls = getattr(captum.attr, name, None)
    if not (isinstance(cls, type) and issubclass(cls, captum.attr.Attribution)) or not hasattr(cls, "attribute"):
        raise ConfigError(f"captum.attr has no attribution class {name!r}; listed: {', '.join(LISTED)}")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not params or required:
        raise ConfigError(f"captum:{name} needs more than the model to be built ({', '.join(required) or 'no model argument'})")
    return cls


def _captum_parameters(cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor options, ``attribute`` options) of a captum class, name -> annotation."""
    ctor_hints, attr_hints = parameter_hints(cls.__init__), parameter_hints(cls.attribute)
    ctor = {p: ctor_hints.get(p, Any) for p in list(inspect.signature(cls.__init__).parameters)[2:]}
    skip = {"self", "inputs", "target", "additional_forward_args"}
    attr = {p.name: attr_hints.get(p.name, Any) for p in inspect.signature(cls.attribute).parameters.values()
            if p.name not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return {k: v for k, v in ctor.items() if k not in ("args", "kwargs")}, attr


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def default_window(size: tuple[int, int]) -> int:
    """Side of the square occlusion window / ablation block: an eighth of the shorter side."""
    return max(1, round(min(size) / 8))


class CaptumMethod(Attribution):
    """A captum attribution class as a xaiseg method (``captum:<ClassName>``; default Saliency)."""

    name = "captum"
    description = "captum.attr.Saliency (use captum:<ClassName> for others); |attribution| summed over channels, min–max"
    architectures = ()  # model-agnostic: captum only calls the model
    needs_gradients = True
    captum_name = "Saliency"

    def __init__(self, model: Any, **options: Any) -> None:
        super().__init__(model, **options)
        cls = _captum_class(self.captum_name)
        ctor, _ = _captum_parameters(cls)
        # JSON gives lists where captum wants tuples (window shapes, strides)
        given = {k: _tuples(v) for k, v in self.options.items()}
        self.ctor_kwargs = {k: v for k, v in given.items() if k in ctor}
        self.attr_kwargs = {k: v for k, v in given.items() if k not in ctor}
        if self.captum_name in RELU_ONLY and not any(isinstance(m, torch.nn.ReLU) for m in self.model.modules()):
            raise ConfigError(
                f"captum:{self.captum_name} only changes the backward pass of nn.ReLU modules and this "
                "model has none (transformers use GELU): it would equal plain input gradients; use saliency"
            )
        self.captum_cls = cls

    @classmethod
    def passthrough_options(cls) -> dict[str, Any]:
        ctor, attr = _captum_parameters(_captum_class(cls.captum_name))
        return {**attr, **ctor}

    @classmethod
    def check_values(cls, options: dict[str, Any]) -> None:
        check_positive(cls.name, options, POSITIVE)
        if "method" in options and cls.captum_name in ("IntegratedGradients", "LayerIntegratedGradients"):
            from captum.attr._utils.approximation_methods import SUPPORTED_METHODS

            if options["method"] not in SUPPORTED_METHODS:
                raise ConfigError(f"option method of {cls.name} must be one of {', '.join(SUPPORTED_METHODS)}, got {options['method']!r}")

    @classmethod
    def variants(cls) -> list[str]:
        return list(LISTED)

    @classmethod
    def variant(cls, name: str, registered_as: str | None = None) -> type["CaptumMethod"]:
        _captum_class(name)
        return cls._leaf_variant(
            registered_as or f"captum:{name}",
            f"captum.attr.{name}; |attribution| summed over channels, min–max per image",
            name not in GRADIENT_FREE, __name__, captum_name=name,
        )

    def _defaults(self, inputs: torch.Tensor) -> dict[str, Any]:
        c, h, w = inputs.shape[1:]
        s = default_window((h, w))
        if self.captum_name == "Occlusion":
            return {"sliding_window_shapes": (c, s, s), "strides": (c, max(1, s // 2), max(1, s // 2)),
                    "perturbations_per_eval": 16}
        if self.captum_name in ("FeatureAblation", "FeaturePermutation", "ShapleyValueSampling", "Lime", "KernelShap"):
            # Square blocks of s×s pixels (all channels together) are the features.
            ids = (torch.arange(h, device=inputs.device)[:, None] // s) * (-(-w // s)) + torch.arange(w, device=inputs.device)[None, :] // s
            out: dict[str, Any] = {"feature_mask": ids.expand(1, c, h, w)}
            if self.captum_name == "FeatureAblation":
                out["perturbations_per_eval"] = 16
            return out
        return {}

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            # The explained class per image, by xaiseg's rule (predicted class, or logit 0 of a
            # 1-logit model); captum needs it spelled out.
            _, target = select_logits(self.model(inputs), target)
        method = self.captum_cls(self.model, **self.ctor_kwargs)
        kwargs = {**self._defaults(inputs), **self.attr_kwargs}
        with torch.enable_grad():
            attr = method.attribute(inputs.detach().requires_grad_(self.needs_gradients), target=target, **kwargs)
        if isinstance(attr, tuple):  # e.g. return_convergence_delta=True
            attr = attr[0]
        return input_attribution_to_map(attr)


def _short(name: str, captum_name: str) -> type[CaptumMethod]:
    return CaptumMethod.variant(captum_name, registered_as=name)


Saliency = _short("saliency", "Saliency")
IntegratedGradients = _short("integrated-gradients", "IntegratedGradients")
InputXGradient = _short("input-x-gradient", "InputXGradient")
Occlusion = _short("occlusion", "Occlusion")
