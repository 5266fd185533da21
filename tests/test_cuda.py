"""GPU checks (skipped without CUDA): maps come back on the input's device and equal the CPU maps."""
from __future__ import annotations

import pytest
import torch

import xaiseg

from .conftest import tiny_swin

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("name", ["hgi-sam", "swin-sam", "rollout", "grad-rollout", "gradcam", "saliency"])
def test_cuda_maps_match_cpu(name):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = tiny_swin()
    x = torch.randn(3, 3, 64, 64)
    cpu = xaiseg.get_method(name)(m).attribute(x, target=1)
    gpu_model = tiny_swin().cuda()
    got = xaiseg.get_method(name)(gpu_model).attribute(x.cuda(), target=1)
    assert got.device.type == "cuda" and got.dtype == torch.float32
    torch.testing.assert_close(got.cpu(), cpu, atol=2e-4, rtol=1e-3)
    assert all(p.grad is None for p in gpu_model.parameters())


@cuda
def test_cuda_memory_does_not_grow_over_calls():
    m = tiny_swin().cuda()
    method = xaiseg.get_method("hgi-sam")(m)
    x = torch.randn(4, 3, 64, 64, device="cuda")
    for _ in range(5):
        method.attribute(x, target=1)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    for _ in range(100):
        method.attribute(x, target=1)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= base


@cuda
def test_cuda_training_with_mixed_precision_saves_a_checkpoint_that_loads_on_cpu(tmp_path):
    from xaiseg.training import TrainConfig, train

    kwargs = {"img_size": 32, "patch_size": 4, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2, 2],
              "num_heads": [1, 1, 2, 2]}
    res = train(TrainConfig(out=str(tmp_path / "run"), data="phantom", model="tiny", model_kwargs=kwargs, epochs=1,
                            steps_per_epoch=3, batch_size=4, val_size=8, device="cuda", precision="auto", progress=False))
    log = (tmp_path / "run" / "train.log").read_text()
    assert "device: cuda" in log
    assert all(p.device.type == "cuda" for p in res.model.parameters())
    x = torch.randn(2, 3, 32, 32)
    on_cpu = xaiseg.load_model(res.out, device="cpu")
    on_gpu = xaiseg.load_model(res.out, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(on_gpu.model(x.cuda()).float().cpu(), on_cpu.model(x), atol=1e-3, rtol=1e-3)
