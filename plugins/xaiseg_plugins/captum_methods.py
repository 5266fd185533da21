"""captum's input attributions as xaiseg methods (``captum:<ClassName>`` and short names).

Any ``captum.attr`` class built from the model alone (``Cls(model)``) can be used as
``captum:<ClassName>``; the family lists those checked on timm Swin. captum computes the
attribution (B, C, H, W) for the target logit of each image, and
:func:`xaiseg.maps.input_attribution_to_map` turns it into the map: absolute value summed over
channels, then per-image min–max.

Options are passed through by name: those of the class's constructor (e.g.
``multiply_by_inputs``) to the constructor, those of its ``attribute`` (``baselines``,
``n_steps``, ``method``, ``internal_batch_size``, ``sliding_window_shapes``, ``strides``,
``perturbations_per_eval``, ``feature_mask``, …) to ``attribute``. Defaults that depend on the
input size (Occlusion's window, FeatureAblation's feature mask) are documented in
docs/plugins.md; anything else is captum's default.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

from xaiseg import Attribution, input_attribution_to_map, select_logits
from xaiseg.errors import ConfigError

LISTED = ("Saliency", "InputXGradient", "IntegratedGradients", "Occlusion", "FeatureAblation")
GRADIENT_FREE = {"Occlusion", "FeatureAblation", "FeaturePermutation", "ShapleyValueSampling",
                 "ShapleyValues", "Lime", "KernelShap"}
UNSUPPORTED = {
    "DeepLift": "its rules assume ReLU-like networks; Swin's attention products and GELUs break them",
    "DeepLiftShap": "its rules assume ReLU-like networks; Swin's attention products and GELUs break them",
    "LRP": "has no rules for Swin's attention, LayerNorm and GELU modules",
    "NoiseTunnel": "wraps another captum method (not built from the model alone)",
    "GuidedGradCam": "needs a convolutional layer; use gradcam for Swin",
}
# Methods that only change the backward pass of nn.ReLU modules: on a model without any they
# silently equal plain gradients, which would mislabel a benchmark row.
RELU_ONLY = {"GuidedBackprop", "Deconvolution"}


def _captum_class(name: str) -> type:
    import captum.attr

    if name in UNSUPPORTED:
        raise ConfigError(f"captum:{name} is not supported on Swin: {UNSUPPORTED[name]}")
    cls = getattr(captum.attr, name, None)
    if not (isinstance(cls, type) and issubclass(cls, captum.attr.Attribution)) or not hasattr(cls, "attribute"):
        raise ConfigError(f"captum.attr has no attribution class {name!r}; listed: {', '.join(LISTED)}")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not params or required:
        raise ConfigError(f"captum:{name} needs more than the model to be built ({', '.join(required) or 'no model argument'})")
    return cls


def default_window(size: tuple[int, int]) -> int:
    """Side of the square occlusion window / ablation block: an eighth of the shorter side."""
    return max(1, round(min(size) / 8))


class CaptumMethod(Attribution):
    """A captum attribution class as a xaiseg method (``captum:<ClassName>``; default Saliency)."""

    name = "captum"
    description = "captum.attr.Saliency (use captum:<ClassName> for others); |attribution| summed over channels, min–max"
    architectures = ("swin",)
    needs_gradients = True
    captum_name = "Saliency"

    def __init__(self, model: Any, **options: Any) -> None:
        cls = _captum_class(self.captum_name)
        ctor = set(list(inspect.signature(cls.__init__).parameters)[2:])
        attr = set(inspect.signature(cls.attribute).parameters) - {"self", "inputs", "target", "additional_forward_args"}
        self.ctor_kwargs = {k: options.pop(k) for k in list(options) if k in ctor}
        self.attr_kwargs = {k: options.pop(k) for k in list(options) if k in attr}
        super().__init__(model, **options)
        if options:
            raise ConfigError(
                f"unknown option(s) for {self.name}: {', '.join(sorted(options))}; "
                f"{cls.__name__} takes {', '.join(sorted(ctor | attr)) or 'none'}"
            )
        if self.captum_name in RELU_ONLY and not any(isinstance(m, torch.nn.ReLU) for m in self.model.modules()):
            raise ConfigError(
                f"captum:{self.captum_name} only changes the backward pass of nn.ReLU modules and this "
                "model has none (Swin uses GELU): it would equal plain input gradients; use saliency"
            )
        self.captum_cls = cls

    @classmethod
    def variants(cls) -> list[str]:
        return list(LISTED)

    @classmethod
    def variant(cls, name: str, registered_as: str | None = None) -> type["CaptumMethod"]:
        _captum_class(name)
        return type(
            f"Captum_{name}",
            (cls,),
            {
                "name": registered_as or f"captum:{name}",
                "description": f"captum.attr.{name}; |attribution| summed over channels, min–max per image",
                "needs_gradients": name not in GRADIENT_FREE,
                "captum_name": name,
                "variants": classmethod(lambda _cls: []),  # a variant is a leaf, not a family
                "variant": None,
                "__module__": __name__,
                "__doc__": f"captum.attr.{name} as a xaiseg method.",
            },
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
