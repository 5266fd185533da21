"""Corrupt, incomplete or mismatched checkpoints give one clear CheckpointError."""
from __future__ import annotations

import json

import pytest
import torch

import xaiseg
from xaiseg.errors import CheckpointError
from xaiseg.training.checkpoint import init_from, read_weights, save_checkpoint
from xaiseg.training.presets import build_model

KW = {"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]}
NAME = "swin_tiny_patch4_window7_224"


def _config(**over):
    cfg = {"timm_name": NAME, "model_kwargs": dict(KW), "num_classes": 2, "task": "binary",
           "class_names": ["no_hemorrhage", "hemorrhage"], "target_index": 1, "input_size": 32,
           "windows": [[40, 120], [80, 200], [600, 2800]], "normalization": {"mean": [0, 0, 0], "std": [1, 1, 1]}}
    cfg.update(over)
    return cfg


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = build_model(NAME, KW, 2)
    save_checkpoint(tmp_path / "ok", model, _config())
    return tmp_path / "ok", model


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg.strip()
    return msg


def test_roundtrip(ckpt):
    path, model = ckpt
    loaded = xaiseg.load_model(path, device="cpu")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model.eval()(x), atol=1e-6, rtol=0)
    assert loaded.target_index == 1 and loaded.input_size == 32


def test_corrupt_weights(ckpt):
    path, _ = ckpt
    (path / "model.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as exc:
        xaiseg.load_model(path, device="cpu")
    _one_line(exc)


def test_truncated_weights(ckpt):
    path, _ = ckpt
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as exc:
        xaiseg.load_model(path, device="cpu")
    _one_line(exc)


def test_missing_or_bad_config(tmp_path, ckpt):
    path, _ = ckpt
    with pytest.raises(CheckpointError, match="not a directory"):
        xaiseg.load_model(tmp_path / "nope")
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        xaiseg.load_model(path)
    (path / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not an xaiseg checkpoint"):
        xaiseg.load_model(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        xaiseg.load_model(path)


def test_mismatched_architecture_lists_keys(ckpt):
    path, _ = ckpt
    cfg = json.loads((path / "config.json").read_text())
    cfg["model_kwargs"]["embed_dim"] = 16  # the weights are embed 8
    cfg["model_kwargs"]["depths"] = [2, 2, 2, 3]  # and one block fewer in the last stage
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as exc:
        xaiseg.load_model(path, device="cpu")
    msg = _one_line(exc)
    assert "missing keys: layers.3.blocks.2." in msg and "shape mismatch: " in msg and "(8, 8) vs (16, 16)" in msg


def test_unexpected_keys_listed(ckpt):
    from safetensors.torch import load_file, save_file

    path, _ = ckpt
    sd = load_file(str(path / "model.safetensors"))
    sd["extra.weight"] = torch.zeros(3)
    del sd["head.fc.bias"]
    save_file(sd, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys: head\.fc\.bias; unexpected keys: extra\.weight"):
        xaiseg.load_model(path, device="cpu")


def test_plain_state_dict_weights_only(tmp_path):
    # A pickle holding arbitrary objects is refused by weights_only=True: a one-line error, no code run.
    import datetime

    torch.save({"model": {"w": torch.zeros(1)}, "when": datetime.datetime(2020, 1, 1)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only=True") as exc:
        read_weights(tmp_path / "evil.pt")
    _one_line(exc)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError):
        read_weights(tmp_path / "junk.pth")


def test_init_from_timm_state_dict_reinitialises_head(tmp_path):
    torch.manual_seed(1)
    src = build_model(NAME, KW, 1000)  # e.g. ImageNet weights: 1000 classes
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, tmp_path / "in1k.pth")
    torch.manual_seed(2)
    dst = build_model(NAME, KW, 2)
    head_before = dst.head.fc.weight.clone()
    skipped = init_from(dst, tmp_path / "in1k.pth")
    assert set(skipped) == {"head.fc.weight", "head.fc.bias"}
    assert torch.equal(dst.head.fc.weight, head_before)
    assert torch.equal(dst.patch_embed.proj.weight, src.patch_embed.proj.weight)
    assert torch.equal(dst.layers[2].blocks[1].attn.qkv.weight, src.layers[2].blocks[1].attn.qkv.weight)
    other = build_model(NAME, {**KW, "embed_dim": 16}, 2)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        init_from(other, tmp_path / "in1k.pth")


def test_init_from_a_vit_of_another_input_size_resamples_its_position_embedding(tmp_path):
    """--init on a ViT goes through the ViT's conversion (not Swin's): a state dict built for
    64 px lands in a 96 px model with its position embedding resampled exactly as timm's
    resample_abs_pos_embed does it, every other weight copied, the head re-initialised."""
    from timm.layers import resample_abs_pos_embed

    kw = {"patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2}
    torch.manual_seed(1)
    src = build_model("vit_tiny_patch16_224", {**kw, "img_size": 64}, 1000)
    torch.save(src.state_dict(), tmp_path / "vit64.pth")
    torch.manual_seed(2)
    dst = build_model("vit_tiny_patch16_224", {**kw, "img_size": 96}, 2)
    skipped = init_from(dst, tmp_path / "vit64.pth")
    assert set(skipped) == {"head.weight", "head.bias"}
    expect = resample_abs_pos_embed(src.pos_embed.detach(), new_size=(6, 6), old_size=(4, 4), num_prefix_tokens=1)
    assert dst.pos_embed.shape == (1, 37, 32)
    torch.testing.assert_close(dst.pos_embed.detach(), expect)
    assert torch.equal(dst.blocks[1].attn.qkv.weight, src.blocks[1].attn.qkv.weight)
    assert torch.equal(dst.cls_token, src.cls_token)
