"""A tiny generated data set (the built-in phantom, PhysioNet layout) and a tiny untrained Swin
checkpoint written exactly as `xaiseg train` writes one, for the benchmark tests; and the loader
of a script in benchmarks/ (not a package) as a module."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from .conftest import tiny_swin

INPUT = 32
MODEL_KWARGS = {"img_size": INPUT, "patch_size": 4, "window_size": 4, "embed_dim": 8, "depths": [2, 2, 2],
                "num_heads": [1, 2, 2]}


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_script(name: str) -> ModuleType:
    """benchmarks/NAME.py, imported fresh."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_phantom(out: Path) -> Path:
    from xaiseg.data.phantom_writer import write_phantom

    # 5 subjects × 6 slices at 64²: 4 subjects carry hemorrhages (enough for 3 subject-wise folds)
    return write_phantom(out, subjects=5, slices_per_subject=6, size=64, prevalence=0.8, seed=0, progress=False)


def make_checkpoint(out: Path) -> Path:
    from xaiseg.training import save_checkpoint

    model = tiny_swin(img_size=INPUT, window_size=4, depths=(2, 2, 2), num_heads=(1, 2, 2), embed_dim=8)
    config = {
        "timm_name": "swin_tiny_patch4_window7_224", "model_kwargs": MODEL_KWARGS, "num_classes": 2, "in_chans": 3,
        "task": "binary", "class_names": ["no_hemorrhage", "hemorrhage"], "target_index": 1, "input_size": INPUT,
        "windows": [[40.0, 120.0], [80.0, 200.0], [600.0, 2800.0]], "model": "tiny-test",
    }
    return save_checkpoint(out, model, config)


def make_assets(tmp_path_factory, name: str) -> tuple[Path, Path]:
    """A test module's own (phantom, checkpoint) pair in a fresh folder (modules never share
    them: some tests change files of their data)."""
    root = tmp_path_factory.mktemp(name)
    return make_phantom(root / "phantom"), make_checkpoint(root / "ckpt")
