"""One command per output folder at a time.

The lock is ``flock`` on the folder itself (an open file description of the directory), so
there is no lock file to go stale: the operating system drops the lock when the holder exits,
however it exits (``kill -9`` included). A second command is refused at once with one line
instead of waiting. Where directories cannot be locked (some network file systems) a
``.xaiseg.lock`` file inside the folder is locked instead; it is never deleted (deleting a lock
file that another process has opened would let two holders in). On systems without ``fcntl``
(Windows) nothing is locked.
"""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".xaiseg.lock"
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _try_lock(fd: int) -> bool:
    """True if locked; False if another process holds it; OSError if it cannot be locked."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def _open_locked(folder: Path) -> int | None:
    """A locked fd on ``folder`` (or its lock file); None if another process holds the lock."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if _try_lock(fd):
            return fd
        os.close(fd)
        return None
    except OSError:  # directories cannot be flocked here: lock a file inside instead
        os.close(fd)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    if _try_lock(fd):
        return fd
    os.close(fd)
    return None


@contextmanager
def folder_lock(folder: str | os.PathLike, option: str = "--out") -> Iterator[Path]:
    """Hold the lock on the existing folder ``folder`` for the ``with`` block.

    Raises :class:`OutputError` (one line) when another command holds it.
    """
    p = Path(folder)
    if fcntl is None:  # pragma: no cover - Windows
        yield p
        return
    try:
        fd = _open_locked(p)
    except OSError as exc:
        raise OutputError(f"{option} {str(p)!r}: cannot lock the folder ({exc.strerror or exc})") from None
    if fd is None:
        raise OutputError(f"{option} {str(p)!r} is in use by another running xaiseg command; wait for it to "
                          "finish (or stop it) or choose another folder")
    try:
        yield p
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


@contextmanager
def waiting_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the lock on the existing folder ``folder``, waiting for another holder to finish
    (for work that every process would do alike, such as generating a shared cache once). No
    lock where ``fcntl`` or directory locks are missing (then the work may be done twice)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # directories cannot be flocked here
            pass
        yield
    finally:
        os.close(fd)  # closing drops the lock
