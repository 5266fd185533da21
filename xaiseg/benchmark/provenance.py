"""What run.json records so a number in a paper can be traced: package versions, a data
fingerprint, the checkpoint's hash."""
from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import torch

PACKAGES = ("xaiseg", "torch", "timm", "captum", "grad-cam", "numpy", "scipy", "scikit-image", "nibabel")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_hash(directory: Path) -> str:
    """sha256 over the checkpoint folder's files (names and contents), in name order."""
    directory = Path(directory)
    h = hashlib.sha256()
    files = [directory] if directory.is_file() else sorted(p for p in directory.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(directory) if p != directory else p.name).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def state_dict_hash(model: Any) -> str:
    """sha256 over a model's state dict (names, dtypes, shapes, values) for a model passed in
    memory rather than as a checkpoint folder."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def data_fingerprint(records: Iterable[Any], root: Path | None = None, truth_files: Iterable[Path] = ()) -> str:
    """sha256 over the scored slices' records (subject, slice, labels, source file), the size
    of each distinct source file — cheap (no pixel reads, one stat per file, never a walk of a
    750k-file folder) yet it changes when the labels, the selection or the files do — and the
    *contents* of ``truth_files`` (hemorrhage and brain masks: every score is measured against
    them, so a resumed run must refuse any change; an image file may be repaired in place)."""
    h = hashlib.sha256()
    for path in sorted({Path(p) for p in truth_files}):
        h.update(f"{path.name}:".encode())
        try:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            h.update(b"<unreadable>")
    sizes: dict[str, int] = {}
    for r in records:
        rec = jsonable(r)
        src = rec.get("source") if isinstance(rec, dict) else None
        if src:  # the file name, not its folder: moving the data set keeps its fingerprint
            rec = {**rec, "source": Path(src).name}
        h.update(json.dumps(rec, sort_keys=True, default=str).encode())
        if src and src not in sizes:
            try:
                sizes[src] = Path(src).stat().st_size
            except OSError:
                sizes[src] = -1
    for src, size in sorted(sizes.items()):
        h.update(f"{Path(src).name}:{size}".encode())
    return h.hexdigest()


def jsonable(r: Any) -> Any:
    if isinstance(r, dict):
        return {k: jsonable(v) for k, v in r.items()}
    if hasattr(r, "_asdict"):
        return jsonable(r._asdict())
    if hasattr(r, "__dataclass_fields__"):
        return {k: jsonable(getattr(r, k)) for k in r.__dataclass_fields__}
    if hasattr(r, "tolist"):
        return r.tolist()
    if isinstance(r, (list, tuple)):
        return [jsonable(v) for v in r]
    return r
