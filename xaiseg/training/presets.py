"""Named configurations and the one place that builds a classifier from a name.

``--model`` takes a preset name (``tiny``, ``tiny-224``, ``small``, ``paper``, ``vit-tiny``) or the timm name
of any model family xaiseg has an adapter for (Swin V1 ``swin_*``, Swin V2 ``swinv2_*``, ViT and
DeiT ``vit_*``/``deit_*``/``deit3_*``, EVA-02 ``eva02_*``; each adapter's ``accepts_name`` decides); extra
constructor arguments come from ``--model-kwargs`` (JSON) and override the preset's. What is
stored in a checkpoint is always the resolved timm name plus the full kwargs, never the preset
name alone, so a checkpoint rebuilds the same network even if a preset changes later.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from torch import nn

from ..errors import ConfigError
from ..json_options import json_object


@dataclass(frozen=True)
class Preset:
    """A named timm configuration."""

    name: str
    timm_name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    # Slices are resized so their shorter side is input × this, then centre-cropped to the
    # input (None: the whole slice fits the input). The paper's recipe: 422 then crop 384.
    resize_ratio: float | None = None


# Why these numbers: see docs/training.md ("Models"). In short: on 2 CPU cores the cost of a
# Swin step is dominated by stage 0, so `tiny` keeps the paper's patch 4 (maps need a fine stage-0
# grid, 32×32 at 128 px) but uses window 4, embed 32 and 2 blocks per stage, which keeps
# HGI-SAM's (regular, shifted) block pairs in every stage. drop_path 0: with fresh phantom slices
# every step there is little to regularise (not compared against drop_path > 0).
_TINY = dict(img_size=128, patch_size=4, window_size=4, embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
             drop_path_rate=0.0)
PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        "swin_tiny_patch4_window7_224",
        _TINY,
        "CPU-sized Swin: 128 px, patch 4, window 4, embed 32, depths 2-2-2-2 (~2.3 M parameters)",
    ),
    # `tiny` at 224 px with window 7 (stage grids 56/28/14/7): HGI-SAM's third stage is 14×14
    # instead of 8×8, and the default on the phantom stream, where it is the first Swin setting
    # that learned to validation AUC ~0.9 without collapsing (docs/training.md, "bf16 on the CPU").
    "tiny-224": Preset(
        "tiny-224",
        "swin_tiny_patch4_window7_224",
        {**_TINY, "img_size": 224, "window_size": 7},
        "tiny at 224 px, window 7 (~2.3 M parameters; ~3x the time per step): the default on the phantom stream",
    ),
    "small": Preset(
        "small",
        "swin_tiny_patch4_window7_224",
        dict(img_size=128, patch_size=4, window_size=4, embed_dim=48, depths=(2, 2, 4, 2),
             num_heads=(2, 4, 8, 16), drop_path_rate=0.05),
        "Larger CPU Swin: 128 px, patch 4, window 4, embed 48, depths 2-2-4-2 (~6.0 M parameters)",
    ),
    "paper": Preset(
        "paper",
        "swin_base_patch4_window12_384",
        dict(img_size=384),
        "The published model (HGI-SAM): Swin-B, patch 4, window 12, 384 px (~87 M parameters)",
        resize_ratio=422 / 384,
    ),
    # A ViT for CPU runs: patch 8 at 128 px keeps a 16×16 grid (maps as fine as tiny Swin's
    # stage 1); 4 blocks of 4 heads, embed 64. drop_path 0 as for `tiny`.
    "vit-tiny": Preset(
        "vit-tiny",
        "vit_tiny_patch16_224",
        dict(img_size=128, patch_size=8, embed_dim=64, depth=4, num_heads=4, drop_path_rate=0.0),
        "CPU-sized ViT: 128 px, patch 8 (16×16 tokens + class token), embed 64, depth 4, 4 heads (~0.2 M parameters)",
    ),
    # Hugging Face (the [hf] extra), built from a config: the same sizes as vit-tiny and tiny.
    "hf-vit-tiny": Preset(
        "hf-vit-tiny",
        "hf:ViTForImageClassification",
        dict(image_size=128, patch_size=8, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=256),
        "CPU-sized Hugging Face ViT (transformers): as vit-tiny",
    ),
    "hf-swin-tiny": Preset(
        "hf-swin-tiny",
        "hf:SwinForImageClassification",
        dict(image_size=128, patch_size=4, window_size=4, embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
             drop_path_rate=0.0),
        "CPU-sized Hugging Face Swin (transformers): as tiny",
    ),
}


def default_model_name(device: str, phantom: bool = False) -> str:
    """The model used when ``--model`` is not given: the paper's on CUDA; elsewhere ``tiny-224``
    on the phantom stream (its recipe, see ``TrainConfig.epochs``) and ``tiny`` on data on disk."""
    if str(device).startswith("cuda"):
        return "paper"
    return "tiny-224" if phantom else "tiny"


def default_resize(model_name: str, input_size: int) -> int | None:
    """The ``Preprocessor`` resize of a preset at ``input_size`` (the paper's: 422 for 384)."""
    preset = PRESETS.get(model_name)
    if preset is None or preset.resize_ratio is None:
        return None
    return round(input_size * preset.resize_ratio)


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """Parse ``--model-kwargs`` JSON into a dict (lists become tuples, as timm expects)."""
    if not text:
        return {}
    value = json_object(text, "--model-kwargs", '{"embed_dim": 48}')
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def image_size_key(model_name: str) -> str:
    """The constructor argument that sets the input size: timm's ``img_size``, Hugging Face's ``image_size``."""
    from .hf_models import is_hf_name

    return "image_size" if is_hf_name(model_name) else "img_size"


def resolve_model(name: str, model_kwargs: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Turn a preset or timm name plus overrides into ``(timm_name, kwargs)``.

    Raises ConfigError for a name that is neither a preset nor a timm Swin V1 model.
    """
    import timm

    overrides = dict(model_kwargs or {})
    if name in PRESETS:
        p = PRESETS[name]
        return p.timm_name, {**dict(p.kwargs), **overrides}
    from .hf_models import canonical, is_hf_name

    if is_hf_name(name):
        return canonical(name), overrides
    from ..adapters import adapter_for_name

    family = adapter_for_name(name)
    if family is None or name not in timm.list_models():
        raise ConfigError(
            f"unknown model {name!r}: use a preset ({', '.join(PRESETS)}) or a timm name of a supported family "
            "(swin_*, swinv2_*, vit_*, deit_*, deit3_*, eva02_*; see timm.list_models()) or a Hugging Face "
            "family (hf-vit, hf-swin; pip install \"xaiseg[hf]\")"
        )
    return name, overrides


def build_model(
    timm_name: str, kwargs: Mapping[str, Any], num_classes: int, *, in_chans: int = 3, pretrained: bool = False,
    fresh: bool = True,
) -> nn.Module:
    """Create the timm classifier; turns timm's constructor errors into one-line ConfigErrors.
    ``fresh=False``: rebuilding a checkpoint that trained (no trial forward of a Hugging Face model)."""
    import timm

    from .hf_models import build_hf, is_hf_name

    if is_hf_name(timm_name):
        if pretrained:
            raise ConfigError(f"{timm_name} is built from a config; --pretrained loads timm hub weights only "
                              "(fine-tune Hugging Face weights with --init STATE_DICT)")
        model = build_hf(timm_name, kwargs, num_classes, in_chans, try_forward=fresh)
        _check_whole_patches(model)
        return model
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(kwargs).items()}
    kw.pop("num_classes", None)
    kw.pop("in_chans", None)
    try:
        model = timm.create_model(timm_name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kw)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        if pretrained and "connect" in str(exc).lower():
            raise ConfigError(f"cannot download pretrained weights for {timm_name!r} (no network?): {exc}") from None
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot build {timm_name} with {dict(kw)}: {msg}") from None
    from ..adapters import get_adapter

    try:  # the methods must be able to read it (e.g. a ViT with global_pool="map" is refused)
        get_adapter(model)
    except TypeError as exc:
        raise ConfigError(f"{timm_name} with {dict(kw)} cannot be explained by xaiseg: {exc}") from None
    _check_whole_patches(model)
    return model


def _check_whole_patches(model: nn.Module) -> None:
    """An input that is no multiple of the patch: timm and transformers drop the last pixels
    silently, and every map would be stretched over pixels the model never saw."""
    pe = getattr(model, "patch_embed", None)
    conf = getattr(getattr(model, "net", None), "config", None)
    size, patch = ((getattr(pe, "img_size", None), getattr(pe, "patch_size", None)) if pe is not None
                   else (getattr(conf, "image_size", None), getattr(conf, "patch_size", None)))
    if size is None or patch is None:
        return
    size = (size, size) if isinstance(size, int) else tuple(size)
    patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
    if any(s % q for s, q in zip(size, patch)):
        fit = [s - s % q for s, q in zip(size, patch)]
        raise ConfigError(f"the input size {size[0]} px is not a multiple of the patch size {patch[0]}: the model would "
                          f"never see the last pixels; use --image-size {fit[0]} or {fit[0] + patch[0]}")


def model_input_size(model: nn.Module) -> int:
    """The square input size a timm Swin or ViT (or a wrapped Hugging Face model) was built for."""
    from .hf_models import hf_input_size

    hf = hf_input_size(model)
    if hf is not None:
        return hf
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is None:
        raise ConfigError(f"{type(model).__name__} has no patch_embed.img_size; xaiseg trains timm Swin and ViT models")
    h, w = (size, size) if isinstance(size, int) else size
    if h != w:
        raise ConfigError(f"only square inputs are supported, the model takes {h}×{w}")
    return int(h)
