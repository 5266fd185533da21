"""Speed and memory of the attribution methods, measured side by side against the floor.

The floor is the least work any gradient-weighted attention method must do: one forward pass
that keeps the softmax inputs Z of the used stages, then ``torch.autograd.grad`` of the target
logit with respect to those Z — nothing else. On a timm ViT, whose Z never passes through a
module, the floor differentiates with respect to the attention probabilities A instead. It is implemented here with bare hooks, sharing
no code with xaiseg, so a slow capture machinery cannot hide inside the reference.

Every configuration is timed in the same process, interleaved repeat by repeat (so drift in
clock speed or background load hits all of them alike), after warm-up; figures are medians.
On CPU, peak memory is measured first, in an untimed round per batch size with glibc's malloc
switched to exact mode (every block above 64 KiB its own mapping, so RSS follows live memory);
the timed rounds then run with a normal, heap-reusing allocator (exact mode costs ~1.5× in time).

    python benchmarks/speed.py                       # Swin-B 384 (paper), CPU: batches 1 and 2
    python benchmarks/speed.py --model tiny --batch-sizes 1,8,32 --json out.json

Last, the whole ``xaiseg benchmark`` pipeline (built-in phantom, shipped classifier) runs on
``--pipeline-slices`` slices and prints images/s with the time per stage (loading,
preprocessing, classifier forward, attribution, metrics, storage, figures). ``--pipeline``
times only that, on ``--pipeline-data DIR`` or a phantom written at ``--pipeline-size N``, and
``--pipeline-checkout DIR`` (repeatable) runs other source trees side by side with the installed
one (interleaved), printing each one's stage times and whether its summary.csv is identical:

    git worktree add /tmp/old <commit>
    python benchmarks/speed.py --pipeline --pipeline-size 512 --pipeline-checkout /tmp/old --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

import xaiseg
from xaiseg.benchmark import DEFAULT_METHODS  # the benchmark's methods: what the pipeline timing runs too
from xaiseg.attribution.spec import parse_method_spec, split_method_list
from xaiseg.benchmark.report import summary_numbers
from xaiseg.training.checkpoint import resolve_device

PAPER = "swin_base_patch4_window12_384"


def build_model(name: str, device: torch.device) -> torch.nn.Module:
    """An xaiseg preset (tiny, small, paper, vit-tiny) or a timm Swin V1/V2 or ViT/DeiT name, with pretrained=False."""
    from xaiseg.training.presets import PRESETS, build_model as build, resolve_model

    if name in PRESETS:
        timm_name, kwargs = resolve_model(name)
        return build(timm_name, kwargs, num_classes=2).to(device).eval()
    import timm

    return timm.create_model(name, pretrained=False, num_classes=2).to(device).eval()


# ------------------------------------------------------------------------------------ memory
class PeakMemory:
    """Peak extra memory of a call: CUDA max-allocated on GPU, sampled RSS on CPU.

    On CPU it is used inside :meth:`Allocator.exact`: every tensor above 64 KiB is then its own
    mapping, returned to the OS when freed, so RSS tracks live tensor memory instead of the
    allocator's high-water mark.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _rss()
            self.peak = self.base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.extra = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss())
            self.extra = self.peak - self.base


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the (never decreasing) max RSS
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Allocator:
    """glibc malloc in two modes, switched at run time with ``mallopt``.

    ``exact()``: blocks above 64 KiB are mmapped and freed memory is trimmed at once, so the
    RSS of a call is its live memory (for :class:`PeakMemory`). ``fast()``: thresholds like
    those glibc's dynamic rule reaches in a warm process (mmap above 32 MiB, trim above 64 MiB),
    so tensors reuse heap memory as in a user's process; timing in exact mode would add the
    kernel's page zeroing of every fresh mapping (~1.5× the wall time of a Swin-B forward).
    Without glibc (macOS, musl) both are no-ops and peaks after the first call may be hidden.
    """

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3

    def __init__(self) -> None:
        import ctypes

        try:
            self.libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None
        except OSError:
            self.libc = None

    @property
    def available(self) -> bool:
        return self.libc is not None

    def exact(self) -> None:
        if self.libc is not None:
            self.libc.mallopt(self.M_MMAP_THRESHOLD, 64 << 10)
            self.libc.mallopt(self.M_TRIM_THRESHOLD, 0)
            self.libc.malloc_trim(0)

    def fast(self) -> None:
        if self.libc is not None:
            self.libc.mallopt(self.M_MMAP_THRESHOLD, 32 << 20)
            self.libc.mallopt(self.M_TRIM_THRESHOLD, 64 << 20)


# ------------------------------------------------------------------------------------ floors
def plain_forward(model: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    def run(x: torch.Tensor) -> object:
        with torch.no_grad():
            return model(x)

    return run


def _floor_points(model: torch.nn.Module, stages: tuple[int, ...]) -> tuple[list[torch.nn.Module], list[torch.nn.Module], bool]:
    """The used blocks, the modules whose input Z (Swin) or output A (ViT) the floor
    differentiates, and whether it is Z."""
    if hasattr(model, "layers"):  # timm Swin V1 / V2: attn.softmax(Z)
        blocks = [b for i in stages for b in model.layers[i].blocks]
        return blocks, [b.attn.softmax for b in blocks], True
    blocks = list(model.blocks)  # timm ViT: Z never enters a module; A leaves attn.attn_drop
    return blocks, [b.attn.attn_drop for b in blocks], False


def gradient_floor(model: torch.nn.Module, stages: tuple[int, ...], target: int) -> Callable[[torch.Tensor], object]:
    blocks, points, on_input = _floor_points(model, stages)
    for blk in blocks:
        blk.attn.fused_attn = False

    def run(x: torch.Tensor) -> object:
        scores: list[torch.Tensor] = []
        hooks = [s.register_forward_hook(lambda m, a, o: scores.append(a[0] if on_input else o)) for s in points]
        try:
            with torch.enable_grad():
                logits = model(x.detach().requires_grad_(True))
                grads = torch.autograd.grad(logits[:, target].sum(), scores)
        finally:
            for h in hooks:
                h.remove()
        return grads

    return run


# ------------------------------------------------------------------------------------ pipeline
def pipeline(device: torch.device, methods: list[str], n_slices: int, threads: int | None,
             data: str | None = None, checkout: str | None = None) -> dict:
    """The whole ``xaiseg benchmark`` run as a user runs it (``python -m xaiseg benchmark``, in a
    fresh process) on ``data`` (default: the built-in phantom) with the shipped classifier,
    restricted to ``n_slices`` slices (0: all); ``checkout``: a source tree to run instead of
    the installed xaiseg (an older commit, for old-against-new). Returns run.json's ``timing``
    (seconds per stage: load, preprocess, classify, attribution, metrics, store, figures, ...)."""
    import subprocess
    import tempfile

    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if checkout:
        root = os.path.abspath(checkout)
        env["PYTHONPATH"] = os.pathsep.join([root, os.path.join(root, "plugins"), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "xaiseg", "benchmark", "--out", out, "--methods", ",".join(methods),
               "--device", str(device)]
        cmd += ["--limit", str(n_slices)] if n_slices else []
        cmd += ["--data", data] if data else []
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
        with open(os.path.join(out, "run.json")) as f:
            meta = json.load(f)
        with open(os.path.join(out, "summary.csv")) as f:
            summary = f.read()
    timing = dict(meta["timing"])
    timing["process_wall_s"] = wall  # incl. interpreter start, imports, model and data opening
    timing["methods"] = methods
    timing["model"] = meta["config"].get("model")
    timing["data"] = data or "built-in phantom"
    timing["checkout"] = checkout or "installed"
    timing["summary_csv"] = summary
    return timing


def pipelines_side_by_side(device: torch.device, methods: list[str], n_slices: int, threads: int | None,
                           data: str | None, checkouts: list[str | None], repeats: int) -> list[dict]:
    """:func:`pipeline` for every checkout, interleaved repeat by repeat (background load hits
    all alike); per checkout the repeat with the median wall time."""
    runs: dict[int, list[dict]] = {i: [] for i in range(len(checkouts))}
    for _ in range(repeats):
        for i, c in enumerate(checkouts):
            runs[i].append(pipeline(device, methods, n_slices, threads, data, c))
    return [sorted(r, key=lambda t: t["process_wall_s"])[len(r) // 2] for r in runs.values()]


def write_pipeline_phantom(size: int, folder: str) -> str:
    """A phantom at ``size`` px written by the installed ``xaiseg phantom`` (default subjects)."""
    import subprocess

    subprocess.run([sys.executable, "-m", "xaiseg", "phantom", folder, "--size", str(size)], check=True,
                   capture_output=True)
    return folder


# ------------------------------------------------------------------------------------ timing
@dataclass
class Row:
    name: str
    batch: int
    seconds_per_image: float
    ratio_to_floor: float | None = None
    ratio_to_forward: float | None = None
    peak_mb_per_image: float | None = None
    ratio_mem_to_floor: float | None = None
    samples: list[float] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(configs: dict[str, Callable[[torch.Tensor], object]], x: torch.Tensor, alloc: Allocator) -> dict[str, int]:
    """CPU: each configuration's peak extra memory, one untimed call each, with the allocator in
    exact mode. Run before any timing: a heap that timed rounds have grown and fragmented
    serves later requests from its free chunks and would hide part of a peak."""
    peaks: dict[str, int] = {}
    alloc.exact()
    try:
        for name, fn in configs.items():
            with PeakMemory(x.device) as pm:
                fn(x)
            peaks[name] = pm.extra
    finally:
        alloc.fast()
    return peaks


def measure(configs: dict[str, Callable[[torch.Tensor], object]], x: torch.Tensor, repeats: int, warmup: int,
            first_call: str | None = None) -> tuple[dict[str, list[float]], dict[str, int]]:
    """``warmup`` untimed rounds (on CUDA the last one, at least one, also reads each
    configuration's peak memory), then ``repeats`` interleaved timed rounds. ``first_call``: a
    configuration called once, untimed, before anything else (on CPU the one with the largest
    peak, so the heap has grown before the first timed call)."""
    device = x.device
    times: dict[str, list[float]] = {k: [] for k in configs}
    peaks: dict[str, int] = {}
    if first_call is not None:
        configs[first_call](x)
    for w in range(warmup):
        for name, fn in configs.items():
            if device.type == "cuda" and w == warmup - 1:
                with PeakMemory(device) as pm:
                    fn(x)
                peaks[name] = pm.extra
            else:
                fn(x)
    names = list(configs)
    for r in range(repeats):
        # interleaved, so drift hits every configuration alike, and rotated each round, so none
        # always runs right after the same neighbour (caches, heap, turbo state)
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = configs[name]
            _sync(device)
            t0 = time.perf_counter()
            fn(x)
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times, peaks


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=PAPER, help=f"xaiseg preset or timm name: Swin V1/V2, ViT/DeiT (default {PAPER}, pretrained=False)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    ap.add_argument("--batch-sizes", default=None, help="comma list (default: 1,2 on CPU, which keeps Swin-B under 5 minutes on 2 cores; 1,8,32 on GPU)")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help="comma list of registered methods (default: those of `xaiseg benchmark`)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per configuration (default 2 CPU, 10 GPU)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds before the first batch size (every batch size on GPU, "
                         "where the last one also measures memory; on CPU memory has a round of its own) (default 1, at least 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--pipeline-slices", type=int, default=48,
                    help="slices of the whole `xaiseg benchmark` run, timed per stage (default 48; 0 = skip it, "
                         "or with --pipeline-data/--pipeline-size: every slice the benchmark selects)")
    ap.add_argument("--pipeline", action="store_true", help="time only the whole pipeline (skip the per-method table)")
    ap.add_argument("--pipeline-data", default=None, help="data folder for the pipeline run (default: the built-in phantom)")
    ap.add_argument("--pipeline-size", type=int, default=None,
                    help="write a phantom of this size (px, default subjects) to a temporary folder and run on it")
    ap.add_argument("--pipeline-checkout", action="append", default=[], metavar="DIR",
                    help="a source tree (e.g. `git worktree add /tmp/old <commit>`) timed side by side with the "
                         "installed xaiseg; repeatable")
    ap.add_argument("--pipeline-repeats", type=int, default=1, help="interleaved pipeline runs per checkout (median)")
    ap.add_argument("--json", dest="json_path", default=None, help="also write the results as JSON here ('-' = stdout)")
    args = ap.parse_args(argv)
    custom = args.pipeline_data or args.pipeline_size
    if 0 < args.pipeline_slices < 20 and not custom:  # fewer leave too few positive subjects for the 5 threshold folds
        ap.error("--pipeline-slices must be 0 (skip) or at least 20")
    if args.pipeline_data and args.pipeline_size:
        ap.error("--pipeline-data and --pipeline-size are two sources of data; give one")
    if args.pipeline and args.pipeline_slices == 0 and not custom:
        ap.error("--pipeline with --pipeline-slices 0 times nothing")
    return args


def _configs(model: torch.nn.Module, methods: list[str], hgi_stages: tuple[int, ...],
             target: int) -> dict[str, Callable[[torch.Tensor], object]]:
    """The forward pass, the floor, and every method that can be built (the others are reported)."""
    configs: dict[str, Callable[[torch.Tensor], object]] = {
        "forward": plain_forward(model),
        "floor": gradient_floor(model, hgi_stages, target),
    }
    for name in methods:
        try:
            spec = parse_method_spec(name)
            inst = xaiseg.get_method(spec.name)(model, **spec.options)
        except Exception as exc:  # a method that is not installed is reported, not fatal
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        configs[name] = (lambda inst: (lambda x: inst.attribute(x, target=target)))(inst)
    return configs


def time_rows(configs: dict[str, Callable[[torch.Tensor], object]], inputs: dict[int, torch.Tensor], repeats: int,
              warmup: int, gpu: bool, alloc: Allocator) -> list[Row]:
    """Every configuration at every batch size: median seconds per image, ratios, peak memory."""
    rows: list[Row] = []
    # CPU memory first, every batch size, in a process whose heap no timed round has grown yet
    cpu_peaks = {} if gpu else {b: peak_memory(configs, x, alloc) for b, x in inputs.items()}
    alloc.fast()  # the timed rounds run with a warm, heap-reusing allocator
    for i, (b, x) in enumerate(inputs.items()):
        # warm-up before the first batch size only: later ones run in a warm process (on GPU,
        # new shapes may pick new kernels, so every batch size is warmed up there)
        first = None if gpu else max(cpu_peaks[b], key=cpu_peaks[b].__getitem__)
        times, peaks = measure(configs, x, repeats, max(warmup, 1) if (i == 0 or gpu) else 0, first)
        peaks = peaks if gpu else cpu_peaks[b]
        med = {k: statistics.median(v) / b for k, v in times.items()}
        for name in configs:
            rows.append(
                Row(
                    name=name,
                    batch=b,
                    seconds_per_image=med[name],
                    ratio_to_floor=med[name] / med["floor"],
                    ratio_to_forward=med[name] / med["forward"],
                    peak_mb_per_image=peaks[name] / b / 2**20,
                    ratio_mem_to_floor=peaks[name] / peaks["floor"] if peaks["floor"] > 0 else None,
                    samples=[t / b for t in times[name]],
                )
            )
    return rows


def _print_rows(rows: list[Row], batches: list[int], gpu: bool) -> None:
    print(f"{'method':<18}{'batch':>6}{'ms/img':>10}{'x floor':>9}{'x fwd':>8}{'MB/img':>9}{'mem x floor':>12}")
    for r in rows:
        mem = f"{r.peak_mb_per_image:9.1f}" if r.peak_mb_per_image is not None else f"{'-':>9}"
        rmem = f"{r.ratio_mem_to_floor:12.2f}" if r.ratio_mem_to_floor is not None else f"{'-':>12}"
        print(f"{r.name:<18}{r.batch:>6}{r.seconds_per_image * 1e3:10.1f}{r.ratio_to_floor:9.2f}{r.ratio_to_forward:8.2f}{mem}{rmem}")
    if gpu and len(batches) > 1:
        fl = {r.batch: r.seconds_per_image for r in rows if r.name == "hgi-sam"}
        if fl:
            print(f"hgi-sam throughput, batch {batches[-1]} vs {batches[0]}: {fl[batches[0]] / fl[batches[-1]]:.1f}x images/s")


START_UP = ("open data", "load model", "load methods")  # run.json stages paid once per run


def _print_pipelines(pipes: list[dict]) -> None:
    """One column per checkout: wall time, throughput and seconds (share) per stage."""
    first = pipes[0]
    print(f"\nwhole pipeline: xaiseg benchmark on {first['data']}, {first['model']} classifier, "
          f"{len(first['methods'])} methods, {first['slices']} slices")
    names = [p["checkout"] for p in pipes]
    print(f"  {'':<18}" + "".join(f"{n[-24:]:>26}" for n in names))
    print(f"  {'process wall s':<18}" + "".join(f"{p['process_wall_s']:>26.1f}" for p in pipes))
    print(f"  {'run elapsed s':<18}" + "".join(f"{p['elapsed_s']:>26.1f}" for p in pipes))
    print(f"  {'slices/s':<18}" + "".join(f"{p['slices_per_s']:>26.2f}" for p in pipes))
    stages = sorted({k for p in pipes for k in p["stage_s"]}, key=lambda k: -first["stage_s"].get(k, 0.0))
    for stage in stages:
        cells = "".join(f"{p['stage_s'].get(stage, 0.0):>17.2f} ({100 * p['stage_share'].get(stage, 0.0):4.1f} %)"
                        for p in pipes)
        print(f"  {stage:<18}{cells}")
    attr = [100 * (p["stage_share"].get("attribution", 0.0) + p["stage_share"].get("classify", 0.0)) for p in pipes]
    print(f"  {'attr.+classify':<18}" + "".join(f"{a:>24.1f} %" for a in attr))
    # what a run pays once, whatever its size (a checkout without "load methods" counts it in "other")
    start_up = [sum(p["stage_s"].get(s, 0.0) for s in START_UP) for p in pipes]
    print(f"  {'start-up s':<18}" + "".join(f"{s:>26.2f}" for s in start_up))
    per_slice = [100 * (p["stage_s"].get("attribution", 0.0) + p["stage_s"].get("classify", 0.0))
                 / max(1e-9, sum(p["stage_s"].values()) - s) for p, s in zip(pipes, start_up)]
    print(f"  {'  w/o start-up':<18}" + "".join(f"{a:>24.1f} %" for a in per_slice))
    for p in pipes[1:]:
        same = "identical" if summary_numbers(p["summary_csv"]) == summary_numbers(first["summary_csv"]) else "DIFFERENT"
        print(f"  {p['checkout']} / {first['checkout']}: wall time x{p['process_wall_s'] / first['process_wall_s']:.2f}; "
              f"summary.csv {same}")


def _run_pipelines(args: argparse.Namespace, device: torch.device, methods: list[str]) -> list[dict]:
    import tempfile

    checkouts = [None, *args.pipeline_checkout]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.pipeline_data or (write_pipeline_phantom(args.pipeline_size, os.path.join(tmp, "ph"))
                                      if args.pipeline_size else None)
        n = args.pipeline_slices if not data or args.pipeline_slices != 48 else 0  # a given data set: all its slices
        pipes = pipelines_side_by_side(device, methods, n, args.threads, data, checkouts, args.pipeline_repeats)
    _print_pipelines(pipes)
    return pipes


def _write_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    text = json.dumps(payload, indent=2)
    if path == "-":
        print(text)
    else:
        with open(path, "w") as f:
            f.write(text)


def _pipeline_only(args: argparse.Namespace, device: torch.device, methods: list[str]) -> int:
    _write_json(args.json_path, {"pipeline": _run_pipelines(args, device, methods)})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    batches = [int(b) for b in (args.batch_sizes or ("1,8,32" if gpu else "1,2")).split(",")]
    repeats = args.repeats or (10 if gpu else 2)
    methods = split_method_list(args.methods)  # a method may carry JSON options: hgi-sam{"stages":[0,1]}
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = False  # measure the float32 model as the user gets it

    if args.pipeline:
        return _pipeline_only(args, device, methods)
    model = build_model(args.model, device)
    adapter = xaiseg.get_adapter(model)
    hgi_stages = tuple(range(min(3, len(adapter.stages))))
    configs = _configs(model, methods, hgi_stages, target=1)
    alloc = Allocator()
    h, w = adapter.input_size
    inputs = {b: torch.rand(b, adapter.in_chans, h, w, device=device) for b in batches}
    rows = time_rows(configs, inputs, repeats, args.warmup, gpu, alloc)

    info = {
        "model": args.model,
        "device": torch.cuda.get_device_name(device) if gpu else f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "xaiseg": xaiseg.__version__,
        "input": [adapter.in_chans, h, w],
        "hgi_sam_stages": list(hgi_stages),
        "repeats": repeats,
        "warmup": args.warmup,
        "memory": "CUDA max_memory_allocated above the baseline" if gpu else (
            "peak RSS above the baseline, sampled every 2 ms, in an untimed round with glibc malloc in exact mode"
            if alloc.available else "peak RSS above the baseline (no glibc: peaks after the first call may be hidden)"),
    }
    print(f"model {args.model}  input {h}x{w}  device {info['device']}  repeats {repeats} (median)")
    _print_rows(rows, batches, gpu)
    pipe = None
    if args.pipeline_slices > 0 or args.pipeline_data or args.pipeline_size:
        pipe = _run_pipelines(args, device, [m for m in methods if m in configs])
    _write_json(args.json_path, {"info": info, "rows": [asdict(r) for r in rows], "pipeline": pipe})
    return 0


if __name__ == "__main__":
    sys.exit(main())
