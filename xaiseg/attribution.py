"""The base class every attribution method derives from (captum-like call)."""
from __future__ import annotations

import abc
import warnings
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from .adapters import ModelAdapter, get_adapter
from .errors import ConfigError
from .targets import normalize_target


class Attribution(abc.ABC):
    """``Method(model, **options).attribute(inputs, target=None, **kw) -> (B, H, W)``.

    ``model`` is a plain classifier (e.g. a timm Swin); the method wraps it in the matching
    adapter. ``inputs`` is a float (B, C, H, W) batch; the result is float32 in [0, 1], on the
    inputs' device, one map per image at the input's spatial size. ``target`` is a class index,
    (B,) indices (tensor, list or array), or None for the predicted class (logit 0 for a 1-logit
    model; a binary ICH model's lesion logit is index 1 — pass it to explain every slice alike).

    Subclasses set the class metadata and implement :meth:`_attribute`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    architectures: ClassVar[tuple[str, ...]] = ("swin",)
    needs_gradients: ClassVar[bool] = False

    def __init__(self, model: nn.Module | ModelAdapter, **options: Any) -> None:
        if not self.architectures and not isinstance(model, ModelAdapter):
            # An architecture-independent method (empty ``architectures``, e.g. a model-free
            # baseline) accepts any module; it gets an adapter only if one fits.
            try:
                self.adapter = get_adapter(model)
            except TypeError:
                self.adapter = None  # type: ignore[assignment]
            self.model = model if self.adapter is None else self.adapter.model
            self._no_leftovers(options)
            self.options = options
            return
        self.adapter = get_adapter(model)
        self.model = self.adapter.model
        if self.architectures and self.adapter.architecture not in self.architectures:
            raise TypeError(
                f"method {self.name or type(self).__name__!r} supports {', '.join(self.architectures)} "
                f"models, not {self.adapter.architecture}"
            )
        self._no_leftovers(options)
        self.options = options

    def _no_leftovers(self, options: dict[str, Any]) -> None:
        # Subclasses take their options by keyword and pass the rest up: what arrives here is a
        # typo or an option of another method, which must not be silently ignored.
        if options:
            import inspect

            known = [p for cls in type(self).__mro__ if "__init__" in vars(cls)
                     for p in list(inspect.signature(vars(cls)["__init__"]).parameters)[2:]
                     if p not in ("options", "kwargs")]
            raise ConfigError(
                f"unknown option(s) for {self.name or type(self).__name__}: {', '.join(sorted(options))}"
                f" (it takes: {', '.join(dict.fromkeys(known)) or 'no options'})"
            )

    def attribute(self, inputs: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"inputs must be a float tensor of shape (B, C, H, W), got {shape}")
        if inputs.shape[0] == 0:
            raise ValueError("inputs is an empty batch")
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

    @classmethod
    def variants(cls) -> list[str]:
        """Names usable as ``<registered name>:<variant>`` (families such as captum's)."""
        return []


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
