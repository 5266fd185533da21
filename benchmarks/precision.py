"""Time of one training step in fp32 and under bf16 autocast, side by side in one process.

A step is what ``xaiseg train`` does per batch: forward, cross-entropy, backward, gradient
clipping and AdamW, on random inputs (the data pipeline is not timed). The precisions are
interleaved repeat by repeat, so drift in clock speed or load hits both alike; figures are
medians after warm-up. Whether ``--precision auto`` picks bf16 here is printed too.

    python benchmarks/precision.py                      # tiny at 128 and 224 px, batch 32, 1 thread
    python benchmarks/precision.py --sizes 128 --threads 2 --repeats 20
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from xaiseg.training.precision import autocast_factory, cpu_has_bf16, resolve_precision
from xaiseg.training.presets import build_model, resolve_model


def _model(size: int) -> nn.Module:
    # the tiny preset; above 128 px a window that divides every stage's grid (as in docs/training.md)
    extra = {} if size == 128 else {"window_size": size // 32}
    name, kwargs = resolve_model("tiny", {"img_size": size, **extra})
    return build_model(name, kwargs, num_classes=2, in_chans=3)


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, ctx) -> None:
    with ctx():
        loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def time_steps(size: int, batch: int, repeats: int, warmup: int) -> dict[str, float]:
    cpu = torch.device("cpu")
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = _model(size)
        runs[precision] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), autocast_factory(precision, cpu))
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,))
    times: dict[str, list[float]] = {p: [] for p in runs}
    for r in range(warmup + repeats):
        for precision, (model, opt, ctx) in runs.items():
            t = time.perf_counter()
            _step(model, opt, x, y, ctx)
            if r >= warmup:
                times[precision].append(time.perf_counter() - t)
    return {p: statistics.median(v) for p, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="128,224", help="input sizes, comma-separated")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    auto = resolve_precision("auto", torch.device("cpu"))
    print(f"torch {torch.__version__}, {a.threads} thread(s), CPU lists bf16 instructions: {cpu_has_bf16()}, "
          f"--precision auto here: {auto}")
    for size in (int(s) for s in a.sizes.split(",")):
        t = time_steps(size, a.batch_size, a.repeats, a.warmup)
        print(f"tiny {size} px, batch {a.batch_size}: fp32 {t['fp32']:.3f} s/step, bf16 {t['bf16']:.3f} s/step, "
              f"bf16 {t['fp32'] / t['bf16']:.2f}x as fast")


if __name__ == "__main__":
    main()
