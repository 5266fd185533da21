"""The base class every attribution method derives from (captum-like call)."""
from __future__ import annotations

import abc
import inspect
import warnings
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from ..adapters import ModelAdapter, get_adapter
from ..adapters.support import model_agnostic, support_reason
from ..errors import ConfigError
from .attention import AttentionRequest
from .options import check_types, parameter_hints
from ..registry import UnknownNameError
from .targets import normalize_target


class Attribution(abc.ABC):
    """``Method(model, **options).attribute(inputs, target=None, **kw) -> (B, H, W)``.

    ``model`` is a plain classifier (a timm Swin or ViT, a Hugging Face ViT or Swin, or for a
    model-agnostic method any ``nn.Module``); the method wraps it in the matching adapter.
    ``inputs`` is a float (B, C, H, W) batch; the result is float32 in [0, 1], on the inputs'
    device, one map per image at the input's spatial size. ``target`` is a class index, (B,)
    indices (tensor, list or array), or None for the predicted class (logit 0 for a 1-logit
    model; a binary ICH model's lesion logit is index 1 — pass it to explain every slice alike).

    Subclasses set the class metadata and implement :meth:`_attribute`. What models a method
    explains is declared by ``requires`` (adapter capabilities, e.g. ``attention``) and
    optionally ``architectures`` (adapter names); with neither it takes any module
    (xaiseg.adapters.support). Options are the keywords of the subclasses' ``__init__`` plus
    :meth:`passthrough_options` (what a family forwards to the library it wraps), checked once,
    by name and by annotated type, before anything is built (:meth:`check_options`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    architectures: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    needs_gradients: ClassVar[bool] = False
    # Keywords of a parent's __init__ this subclass does not take (e.g. swin-sam: HGI-SAM's blocks=)
    withheld_options: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, model: Any = None, *args: Any, **options: Any) -> "Attribution":
        # The one options check, here so that it sees every option before any __init__ (or the
        # wrapped library) does work with one.
        cls.check_options(options)
        return super().__new__(cls)

    def __init__(self, model: nn.Module | ModelAdapter, **options: Any) -> None:
        if model_agnostic(type(self)) and not isinstance(model, ModelAdapter):
            if not isinstance(model, nn.Module):  # the one-line TypeError of get_adapter, at once
                get_adapter(model)
            # Any module: it gets an adapter only if one fits (then inputs are checked against it).
            try:
                self.adapter = get_adapter(model)
            except TypeError:
                self.adapter = None  # type: ignore[assignment]
        else:
            self.adapter = get_adapter(model)
            reason = support_reason(type(self), self.adapter)
            if reason is not None:
                raise TypeError(reason)
        self.model = model if self.adapter is None else self.adapter.model
        self.options = options  # what reached the base: the pass-through options only

    # ------------------------------------------------------------------ options and variants
    @classmethod
    def own_options(cls) -> dict[str, Any]:
        """Keyword options of the ``__init__`` methods along the class hierarchy -> annotation."""
        out: dict[str, Any] = {}
        for klass in cls.__mro__:
            init = vars(klass).get("__init__")
            if init is None or klass is Attribution or klass is object:
                continue
            hints = parameter_hints(init)
            for p in list(inspect.signature(init).parameters.values())[2:]:
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in out or p.name in cls.withheld_options:
                    continue
                out[p.name] = hints.get(p.name, Any)
        return out

    @classmethod
    def passthrough_options(cls) -> dict[str, Any]:
        """Options a family forwards to the library it wraps (name -> annotation); none here."""
        return {}

    @classmethod
    def accepted_options(cls) -> list[str]:
        return list(dict.fromkeys([*cls.own_options(), *sorted(cls.passthrough_options())]))

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """ConfigError (one line) for an option no part of this method takes or of the wrong type."""
        label = cls.name or cls.__name__
        accepted = cls.accepted_options()
        unknown = sorted(k for k in options if k not in accepted)
        if unknown:
            raise ConfigError(f"unknown option(s) for {label}: {', '.join(unknown)} (it takes: {', '.join(accepted) or 'no options'})")
        check_types(label, options, {**cls.passthrough_options(), **cls.own_options()})
        cls.check_values(options)

    @classmethod
    def check_values(cls, options: dict[str, Any]) -> None:
        """Value rules beyond types that must fail before any work (families override)."""

    @classmethod
    def variants(cls) -> list[str]:
        """Names usable as ``<registered name>:<variant>`` (families such as captum's)."""
        return []

    @classmethod
    def variant(cls, name: str) -> type["Attribution"]:
        """The class registered as ``<family>:<name>`` (families override)."""
        raise UnknownNameError(f"method {cls.name or cls.__name__!r} has no variants (asked for {name!r})")

    @classmethod
    def _leaf_variant(cls, label: str, description: str, needs_gradients: bool, module: str, **attrs: Any) -> type:
        """A subclass of this family for one variant: a leaf (no variants of its own)."""
        return type(
            f"{cls.__name__}_{label.rpartition(':')[2]}",
            (cls,),
            {"name": label, "description": description, "needs_gradients": needs_gradients,
             "variants": classmethod(lambda _cls: []), "variant": classmethod(Attribution.variant.__func__),
             "__module__": module, "__doc__": f"{description}, as a xaiseg method.", **attrs},
        )

    def attribute(self, inputs: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"inputs must be a float tensor of shape (B, C, H, W), got {shape}")
        if inputs.shape[0] == 0:
            raise ValueError("inputs is an empty batch")
        if not bool(torch.isfinite(inputs).all()):
            raise ValueError("inputs contain NaN or infinite values; clean or drop those images before explaining them")
        if self.adapter is not None:
            self._check_fits(inputs)
        if self.needs_gradients and torch.is_inference_mode_enabled():
            raise RuntimeError(
                f"{self.name or type(self).__name__} needs gradients, which torch.inference_mode() forbids; "
                "call it outside inference_mode (an outer torch.no_grad() is fine)"
            )
        if _stochastic(self.model):
            warnings.warn(
                "the model is in training mode: dropout and drop-path make its maps random; call model.eval() first",
                stacklevel=2,
            )
        tgt = normalize_target(target, inputs.shape[0], inputs.device)
        maps = self._attribute(inputs, tgt, **kwargs)
        expected = (inputs.shape[0], *inputs.shape[-2:])
        if tuple(maps.shape) != expected:
            raise RuntimeError(f"{type(self).__name__} returned maps of shape {tuple(maps.shape)}, expected {expected}")
        maps = torch.nan_to_num(maps.detach().to(device=inputs.device, dtype=torch.float32), nan=0.0)
        return maps.clamp_(0.0, 1.0)

    __call__ = attribute

    def attention_request(self) -> "AttentionRequest | None":
        """Opt in to sharing one attention pass with other methods (xaiseg.attribution.shared):
        what this method needs recorded — blocks, reducers, gradients — as a fresh
        :class:`~xaiseg.attribution.attention.AttentionRequest` (reducers may hold per-pass
        state). Such a method gets its pass from :func:`~xaiseg.attribution.shared.shared_pass`
        in ``_attribute``. None (the default): the method runs however it likes, never shared."""
        return None

    def _check_fits(self, inputs: torch.Tensor) -> None:
        # The adapter reads token grids and windows off the model as built; another input size
        # would fail deep inside the model or, worse, be cut to the wrong grid.
        size, chans = tuple(inputs.shape[-2:]), inputs.shape[1]
        want = tuple(self.adapter.input_size)
        if size != want:
            raise ValueError(
                f"inputs are {size[0]}×{size[1]} but the model was built for {want[0]}×{want[1]}; "
                "resize them (xaiseg.data.Preprocessor does) or build the model with that img_size"
            )
        if chans != self.adapter.in_chans:
            raise ValueError(f"inputs have {chans} channels but the model takes {self.adapter.in_chans}")

    @abc.abstractmethod
    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        """Maps (B, H, W) for ``inputs``; ``target`` is None or a (B,) long tensor."""


def _stochastic(model: nn.Module) -> bool:
    """Whether a forward of ``model`` is random now: a dropout or timm drop-path (stochastic
    depth) with a non-zero rate in training mode."""
    for m in model.modules():
        if not m.training:
            continue
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return True
        if type(m).__name__ == "DropPath" and float(getattr(m, "drop_prob", 0.0) or 0.0) > 0:
            return True
    return False
