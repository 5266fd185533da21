"""Grad-CAM and the grad-cam package's other CAMs (``gradcam``, ``gradcam:<ClassName>``).

The CAM itself is computed by the ``grad-cam`` package (pytorch_grad_cam) at the target layer's
token-grid resolution: its hooks record the layer's output and gradient, the reshape from timm's
NHWC (B, H, W, C) or token (B, L, C) layout to NCHW is the adapter's (read from the tensor and
the model, never a hard-coded grid; a ViT's prefix tokens are dropped), the package forms the class map, applies its ReLU and
scales each image to [0, 1]. We then upsample bilinearly (align_corners=False; the package's
cv2.resize gives the same numbers) and min–max each image again, as the package does after its
resize. Only the upsampling moves out of the package, so the map stays a tensor on the inputs'
device and every method in xaiseg shares one resize rule.

The package is not told about our model's state, so we protect it around the call: its forward
hooks are always released, the training/eval flag of every sub-module is restored (the package
calls ``model.eval()``), and parameters are frozen for the call (the input carries the graph)
so that no parameter gradient is computed and existing ``.grad`` tensors are left as they were
(the package calls ``model.zero_grad()``; we put them back).
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator

import torch
from torch import nn

import xaiseg
from xaiseg import Attribution, minmax_normalize, upsample
from xaiseg.errors import ConfigError
from xaiseg.attribution.options import check_positive, parameter_hints

# CAMs checked on timm Swin and ViT (tests run each of them on tiny models); the family lists these.
LISTED = (
    "GradCAMPlusPlus",
    "XGradCAM",
    "HiResCAM",
    "GradCAMElementWise",
    "LayerCAM",
    "EigenCAM",
    "EigenGradCAM",
    "ScoreCAM",
    "KPCA_CAM",
)
# FEM works too (gradcam:FEM) but is not listed: its k-sigma threshold is all-zero on small
# grids (never exceeded by 4 tokens), so it is not a fair default row.
# Gradient-free CAMs (constructed with uses_gradients=False in the package).
GRADIENT_FREE = {"EigenCAM", "ScoreCAM", "KPCA_CAM", "FEM", "AblationCAM"}
# The package's classes that cannot work here, and why (asked for by name, they fail clearly).
UNSUPPORTED = {
    "AblationCAM": "needs an ablation layer written for the model's layout; not wired for Swin",
    "FullGrad": "ignores the target layer and needs convolution/batch-norm biases; not for Swin",
    "ShapleyCAM": "skips the reshape_transform for its activations; fails on Swin's NHWC layout",
    "FinerCAM": "wraps another CAM and needs comparison targets; not a plain class map",
    "RandomCAM": "random channel weights; use the `random` baseline instead",
    "SegEigenCAM": "made for segmentation outputs",
    "RefineCAM": "a wrapper around another CAM, not a CAM",
    "SESS": "a wrapper around another CAM, not a CAM",
}


def _cam_class(name: str) -> type:
    import pytorch_grad_cam
    from pytorch_grad_cam.base_cam import BaseCAM

    if name in UNSUPPORTED:
        raise ConfigError(f"gradcam:{name} is not supported: {UNSUPPORTED[name]}")
    cls = getattr(pytorch_grad_cam, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseCAM)):
        raise ConfigError(f"pytorch_grad_cam has no CAM class {name!r}; known: GradCAM, {', '.join(LISTED)}")
    return cls


def _at_grid_resolution(cls: type) -> type:
    """The package's CAM class, returning maps at the layer's own grid: with no target size its
    ``scale_cam_image`` min–max scales each image and skips the cv2 resize."""

    class AtGrid(cls):  # type: ignore[valid-type, misc]
        def get_target_width_height(self, input_tensor: torch.Tensor) -> None:  # noqa: ARG002
            return None

    AtGrid.__name__ = cls.__name__
    return AtGrid


@contextlib.contextmanager
def protected(model: nn.Module) -> Iterator[None]:
    """Run code that may call ``model.eval()``, ``model.zero_grad()`` and ``backward()``, and leave
    the model as it was: modes restored, parameters' ``requires_grad`` and ``.grad`` untouched."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        for p, _, _ in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, req, grad in params:
            p.requires_grad_(req)
            p.grad = grad
        for m, training in modes:
            m.training = training


class GradCAM(Attribution):
    """Grad-CAM (pytorch_grad_cam) at a layer on the token grid; default: the adapter's layer
    (Swin V1: the last block's norm1; ViT: blocks[-1].norm1)."""

    name = "gradcam"
    description = "Grad-CAM via the grad-cam package at the model family's default layer (or layer=...), token-grid CAM upsampled"
    requires = (xaiseg.FEATURE_MAP,)
    needs_gradients = True
    cam_name = "GradCAM"

    def __init__(self, model: Any, layer: str | None = None, batch_size: int | None = None,
                 eigen_smooth: bool = False, aug_smooth: bool = False, **options: Any) -> None:
        super().__init__(model, **options)
        self.layer = layer or self.adapter.default_cam_layer
        try:
            self.adapter.module(self.layer)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.cam_cls = _at_grid_resolution(_cam_class(self.cam_name))
        self.cam_kwargs = dict(self.options)  # what reached the base: the CAM class's own options
        self.batch_size = batch_size
        self.eigen_smooth = bool(eigen_smooth)
        self.aug_smooth = bool(aug_smooth)

    @classmethod
    def passthrough_options(cls) -> dict[str, Any]:
        cam_cls = _cam_class(cls.cam_name)
        hints = parameter_hints(cam_cls.__init__)
        own = set(inspect.signature(cam_cls.__init__).parameters) - {"self", "model", "target_layers", "reshape_transform"}
        return {k: hints.get(k, Any) for k in own}

    @classmethod
    def check_values(cls, options: dict[str, Any]) -> None:
        check_positive(cls.name, options, ("batch_size",))

    @classmethod
    def variants(cls) -> list[str]:
        return list(LISTED)

    @classmethod
    def variant(cls, name: str) -> type["GradCAM"]:
        _cam_class(name)  # fail now, with the reason, for unknown or unsupported names
        return cls._leaf_variant(
            f"gradcam:{name}",
            f"pytorch_grad_cam.{name} at the model family's default layer (or layer=...), token-grid CAM upsampled",
            name not in GRADIENT_FREE, __name__, cam_name=name,
        )

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        n = self.adapter.num_classes
        if target is not None and (int(target.min()) < 0 or int(target.max()) >= n):
            raise ValueError(f"target class out of range for a model with {n} logits: {target.tolist()}")
        targets = None if target is None else [ClassifierOutputTarget(int(t)) for t in target]
        layer = self.layer
        reshape = lambda t: self.adapter.to_nchw(t, layer)  # noqa: E731
        with protected(self.model), torch.enable_grad():
            # compute_input_gradient: with the parameters frozen, the input carries the graph.
            cam = self.cam_cls(self.model, [self.adapter.module(layer)], reshape_transform=reshape, **self.cam_kwargs)
            try:
                cam.compute_input_gradient = bool(cam.uses_gradients)
                if self.batch_size is not None:
                    cam.batch_size = int(self.batch_size)  # ScoreCAM's forward batch
                grid = cam(inputs.detach(), targets, aug_smooth=self.aug_smooth, eigen_smooth=self.eigen_smooth)
            finally:
                cam.activations_and_grads.release()
                cam.outputs = None
        maps = torch.from_numpy(grid).to(device=inputs.device, dtype=torch.float32)
        return minmax_normalize(upsample(maps, tuple(inputs.shape[-2:])))
