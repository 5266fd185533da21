"""Atomic output files: each is written under a temporary name in its own folder and renamed
into place, so a crash, Ctrl-C or a full disk never leaves a truncated file under the final
name (a reader sees the old file or the complete new one, never half of one).

Any ``OSError`` while writing (ENOSPC, EACCES, EROFS, ...) becomes one :class:`OutputError`
line naming the final path, plus ``hint`` (e.g. how to resume) when the caller gives one; the
temporary file is removed.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ..errors import OutputError

# suffixes that libraries read to pick the format (nibabel: .nii.gz compresses; matplotlib:
# .png/.pdf; numpy: .npz), so the temporary name must end the same way
_DOUBLE_SUFFIXES = (".nii.gz", ".tar.gz")


def _split_name(name: str) -> tuple[str, str]:
    for suf in _DOUBLE_SUFFIXES:
        if name.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)], suf
    p = Path(name)
    return (p.stem, p.suffix) if p.suffix else (name, "")


def output_error(path: str | os.PathLike, exc: OSError, hint: str | None = None) -> OutputError:
    """The one-line error for an ``OSError`` raised while writing ``path``."""
    why = exc.strerror or str(exc) or type(exc).__name__
    err = OutputError(f"cannot write {str(path)!r}: {why}" + (f"; {hint}" if hint else ""))
    err.errno, err.hinted = exc.errno, bool(hint)  # lets disk_errors add its hint to an unhinted one
    return err


# errors of the disk rather than of the input: full, over quota, read-only, failing
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


@contextmanager
def disk_errors(where: str | os.PathLike, hint: str | Callable[[], str | None] | None = None) -> Iterator[None]:
    """A disk error (:data:`DISK_ERRNOS`) raised anywhere in the block -- by code that does not
    write through this module, e.g. a log being appended -- becomes one :class:`OutputError`
    line naming the file (or ``where``); ``hint`` may be a callable, asked only then. A disk
    error already turned into an :class:`OutputError` by this module without a hint gets it too."""
    try:
        yield
    except OutputError as exc:
        if getattr(exc, "errno", None) not in DISK_ERRNOS or getattr(exc, "hinted", True):
            raise
        more = hint() if callable(hint) else hint
        if not more:
            raise
        raise OutputError(f"{exc}; {more}") from None
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        raise output_error(exc.filename or where, exc, hint() if callable(hint) else hint) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, hint: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success it replaces ``path``.

    The caller writes the whole file to the yielded path. On any error it is removed and
    ``path`` is left as it was.
    """
    final = Path(path)
    base, ext = _split_name(final.name)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{base}.", suffix=f".partial{ext}", dir=final.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(final, exc, hint) from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; outputs are not
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(final, exc, hint) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], hint: str | None = None) -> Path:
    """``write(tmp)`` writes the whole file to ``tmp``, which then replaces ``path``."""
    with atomic_path(path, hint) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, hint: str | None = None, encoding: str = "utf-8") -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding), hint)


def write_json(path: str | os.PathLike, obj: Any, hint: str | None = None, indent: int | None = 2, **dumps: Any) -> Path:
    """JSON with a final newline; serialised before anything is written (a bad value fails first)."""
    return write_text(path, json.dumps(obj, indent=indent, **dumps) + "\n", hint)


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str],
              hint: str | None = None) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames))
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue(), hint)


def save_npz(path: str | os.PathLike, hint: str | None = None, level: int = 1, **arrays: Any) -> Path:
    """An ``.npz`` that ``numpy.load`` reads, each array deflated at zlib ``level`` (0: stored).
    Level 1 takes a third of the time of numpy's ``savez_compressed`` (level 6); float16 maps,
    whose low mantissa bits are noise, come out only a little larger (a 512² run's cache: +2.7 %)."""
    import zipfile

    import numpy as np

    def write(tmp: Path) -> None:
        how = dict(compression=zipfile.ZIP_DEFLATED, compresslevel=level) if level else dict(compression=zipfile.ZIP_STORED)
        with zipfile.ZipFile(tmp, "w", allowZip64=True, **how) as zf:
            for name, a in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(a), allow_pickle=False)

    return atomic_write(path, write, hint)


def save_nifti(img: Any, path: str | os.PathLike, hint: str | None = None) -> Path:
    """``nibabel.save`` through a temporary ``.nii``/``.nii.gz`` of the same kind."""
    import nibabel as nib

    return atomic_write(path, lambda tmp: nib.save(img, str(tmp)), hint)


def save_figure(fig: Any, path: str | os.PathLike, hint: str | None = None, **savefig: Any) -> Path:
    """``fig.savefig``; the format follows the suffix of ``path`` as in matplotlib."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, **savefig), hint)


def save_safetensors(tensors: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None,
                     hint: str | None = None) -> Path:
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        try:
            save_file(dict(tensors), str(tmp), metadata=dict(metadata or {}))
        except SafetensorError as exc:
            # the Rust writer reports a full disk as text ("I/O error: ... (os error 28)"), not as
            # an OSError: make it one, so that it is the same one line as every other write
            code = re.search(r"\(os error (\d+)\)", str(exc))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(tmp)) from None

    return atomic_write(path, write, hint)


def save_torch(obj: Any, path: str | os.PathLike, hint: str | None = None) -> Path:
    """``torch.save`` (tensors and plain containers only: read back with ``weights_only=True``)."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            out = _RecordingFile(fh)
            try:
                torch.save(obj, out)
            except RuntimeError:
                # torch's zip writer turns a failed write (a full disk) into a RuntimeError about
                # stream positions; the OSError behind it is what the user needs to hear about
                if out.error is not None:
                    raise out.error from None
                raise

    return atomic_write(path, write, hint)


class _RecordingFile:
    """A binary file for ``torch.save`` that keeps the ``OSError`` a write raised."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.name, self.error = fh, fh.name, None

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()
