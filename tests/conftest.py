"""Shared fixtures: tiny timm Swins built with pretrained=False so every test runs on a CPU."""
from __future__ import annotations

import pytest
import timm
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def _fp32_on_every_cpu():
    """``--precision auto`` trains in bf16 on a CPU with bf16 instructions: the suite pins such CPUs to
    fp32 so that a run's trajectory (which epochs a test's run picks, what it learns) is the same on
    every machine; tests of bf16 ask for it (tests/test_train_precision.py). Session-wide, so that
    module fixtures' runs are pinned too; processes a test starts pass --precision themselves."""
    from xaiseg.training import precision

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(precision, "cpu_has_bf16", lambda cpuinfo=None: False)
        yield


def tiny_swin(
    img_size: int | tuple[int, int] = 64,
    window_size: int = 4,
    depths: tuple[int, ...] = (2, 2, 3, 2),
    num_heads: tuple[int, ...] = (1, 2, 2, 4),
    embed_dim: int = 8,
    num_classes: int = 2,
    patch_size: int = 4,
    seed: int = 0,
    **kwargs,
) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        img_size=img_size,
        patch_size=patch_size,
        window_size=window_size,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=num_heads,
        num_classes=num_classes,
        **kwargs,
    )
    return model.eval()


@pytest.fixture
def swin() -> torch.nn.Module:
    return tiny_swin()


def tiny_swinv2(
    img_size: int | tuple[int, int] = 64,
    window_size: int = 4,
    depths: tuple[int, ...] = (2, 2, 3),
    num_heads: tuple[int, ...] = (1, 2, 2),
    embed_dim: int = 8,
    num_classes: int = 2,
    seed: int = 0,
) -> torch.nn.Module:
    """A tiny timm Swin V2. timm zero-initialises the post-norms' weights (res-post-norm), which
    cuts every attention branch off the logits (all gradients 0); they are drawn at random here."""
    torch.manual_seed(seed)
    model = timm.create_model(
        "swinv2_tiny_window8_256", pretrained=False, img_size=img_size, patch_size=4, window_size=window_size,
        embed_dim=embed_dim, depths=depths, num_heads=num_heads, num_classes=num_classes,
    )
    with torch.no_grad():
        for stage in model.layers:
            for blk in stage.blocks:
                for norm in (blk.norm1, blk.norm2):
                    norm.weight.uniform_(0.5, 1.5)
    return model.eval()


def tiny_vit(kind: str = "vit", img_size: int | tuple[int, int] = 32, depth: int = 3, num_classes: int = 2,
             seed: int = 0) -> torch.nn.Module:
    """Tiny timm ViTs: ``vit`` (class token), ``deit`` (distilled: class + distillation token),
    ``reg`` (4 register tokens, global_pool='avg', no class token), ``eva`` (timm's Eva: EVA-02
    with rotary position embeddings, SwiGLU, a class token and average pooling)."""
    torch.manual_seed(seed)
    name = {"vit": "vit_tiny_patch16_224", "deit": "deit_tiny_distilled_patch16_224",
            "reg": "vit_medium_patch16_reg4_gap_256", "eva": "eva02_tiny_patch14_224"}[kind]
    model = timm.create_model(name, pretrained=False, img_size=img_size, patch_size=8, embed_dim=16, depth=depth,
                              num_heads=2, num_classes=num_classes)
    return model.eval()


def hf_models() -> dict[str, torch.nn.Module]:
    """A tiny Hugging Face ViT and Swin built from configs (no download)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, num_labels=2)).eval()
    swin = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=32, patch_size=2, embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=4,
        num_labels=2)).eval()
    return {"hf-vit": vit, "hf-swin": swin}
