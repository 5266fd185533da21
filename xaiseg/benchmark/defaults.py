"""The embedded default of ``xaiseg benchmark`` with no arguments: the built-in phantom,
generated once into a cache folder, and the shipped classifier."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import CheckpointError, DataError
from ..output.lock import waiting_lock

# Sized so that the default benchmark (7 methods) stays under 5 minutes on 2 CPU cores with the
# shipped model: 16 subjects × 12 slices at 128² (the tiny classifier's input size, so maps are
# scored without resampling), 12 subjects with hemorrhage → 40 positive slices, scored with as
# many negatives (runner.DEFAULT_NEGATIVE_RATIO). Seed 7: not the seed the classifier trained with.
DEFAULT_PHANTOM: dict = {"subjects": 16, "slices_per_subject": 12, "size": 128, "prevalence": 0.75, "seed": 7}


def cache_root() -> Path:
    """``$XAISEG_CACHE``, else ``$XDG_CACHE_HOME/xaiseg``, else ``~/.cache/xaiseg``."""
    if os.environ.get("XAISEG_CACHE"):
        from ..output.paths import check_out_dir

        return check_out_dir(Path(os.environ["XAISEG_CACHE"]).expanduser(), "XAISEG_CACHE")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "xaiseg"


def _generator_fingerprint() -> str:
    """The phantom generator's version and source (every phantom module): a changed generator
    never reuses a phantom cached by an older one (the labels may agree while the voxels do not)."""
    from ..data import phantom, phantom_writer

    h = hashlib.sha256(str(getattr(phantom_writer, "PHANTOM_VERSION", "?")).encode())
    h.update(phantom.generator_fingerprint().encode())
    return h.hexdigest()


def phantom_dir(params: dict | None = None) -> Path:
    """``<cache>/phantom-<hash of the parameters and the generator>``."""
    params = dict(DEFAULT_PHANTOM if params is None else params)
    blob = json.dumps({"params": params, "generator": _generator_fingerprint()}, sort_keys=True)
    return cache_root() / f"phantom-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def default_phantom(params: dict | None = None, progress: bool = True) -> Path:
    """The cached default phantom, generated on first use (into a temporary folder renamed into
    place, so an interrupted generation never leaves a half-written cache)."""
    params = dict(DEFAULT_PHANTOM if params is None else params)
    target = phantom_dir(params)
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # several first runs at once (torchrun's processes): one generates, the others wait for it
    with waiting_lock(target.parent):
        if (target / ".complete").exists():
            return target
        return _generate(target, params, progress)


def _generate(target: Path, params: dict, progress: bool) -> Path:
    from ..data.phantom_writer import write_phantom

    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        if progress:
            print(f"generating the benchmark phantom once into {target} ...", flush=True)
        write_phantom(tmp, progress=progress, **params)
        (tmp / ".complete").write_text(json.dumps(params, sort_keys=True) + "\n")
        if (target / ".complete").exists():  # another first run finished it meanwhile
            return target
        if target.exists():  # a stale, incomplete folder from an interrupted earlier attempt
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / ".complete").exists():  # not a race lost to an equal copy
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_data(data: str | Path | None, layout: str, progress: bool = True) -> tuple[Path, str]:
    if data is None:
        return default_phantom(progress=progress), "physionet"
    p = Path(data).expanduser()
    if not p.exists():
        raise DataError(f"data path {p} does not exist")
    return p, layout


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    if checkpoint is None:
        try:
            from ..training import default_checkpoint
        except ImportError as exc:
            raise CheckpointError(f"no default checkpoint is available ({exc}); pass --checkpoint DIR") from None
        path = Path(default_checkpoint())
        if not path.is_dir():
            raise CheckpointError(f"the shipped default checkpoint is missing ({path}); pass --checkpoint DIR")
        return path
    p = Path(checkpoint).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    return p
