"""Opening input files safely: only regular files, text in a known encoding.

- Only regular files are opened. A FIFO would block ``open`` forever, a socket or device is not
  data, a folder or a dangling link is not a file: each is a one-line :class:`DataError` naming
  the path and what it is (data sets turn it into a skipped item under ``skip_bad``).
- Text (label CSVs, file lists, subject tables) is decoded by this rule, the same for every
  file: a byte-order mark says the encoding (UTF-8, UTF-16 or UTF-32, as Excel and Windows
  tools write them); without one the file must be UTF-8, and if it is not, it is read as
  Latin-1 (ISO-8859-1, what older Windows and Excel tools write for Western European text;
  every byte is a character, so nothing is dropped). Text with NUL bytes and no byte-order
  mark (UTF-16 without its mark, or a binary file) is an error: save the file as UTF-8.
"""
from __future__ import annotations

import codecs
import csv
import io
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import DataError

_BOMS = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def file_kind(path: Path) -> str:
    """What ``path`` is, in words: 'a regular file', 'a folder', 'a FIFO', 'a dangling link', ..."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a dangling link" if path.is_symlink() else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file (or a link to one); else a one-line DataError."""
    p = Path(path)
    kind = file_kind(p)
    if kind == "a regular file":
        return p
    if kind == "missing":
        raise DataError(f"{p}: {what} not found")
    raise DataError(f"{p}: {what} is {kind}, not a regular file")


def text_encoding(path: str | Path, what: str = "text file") -> str:
    """The encoding to read ``path`` with (see the module docstring)."""
    p = regular_file(path, what)
    with open(p, "rb") as fh:
        head = fh.read(4)
        for bom, enc in _BOMS:
            if head.startswith(bom):
                return enc
        fh.seek(0)
        dec = codecs.getincrementaldecoder("utf-8")()
        utf8, nul = True, False
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            nul = nul or b"\x00" in chunk
            if utf8:
                try:
                    dec.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
        if utf8:
            try:
                dec.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if nul:
        raise DataError(f"{p}: {what} holds NUL bytes (UTF-16 without a byte-order mark, or not text); save it as UTF-8")
    return "utf-8" if utf8 else "latin-1"


@contextmanager
def open_text(path: str | Path, what: str = "text file") -> Iterator[io.TextIOBase]:
    """``open(path, newline="")`` in the encoding of :func:`text_encoding`, for ``csv``; a file
    that is not valid in its own byte-order mark's encoding, or a malformed CSV, is a DataError."""
    p = Path(path)
    enc = text_encoding(p, what)
    try:
        with open(p, newline="", encoding=enc) as fh:
            yield fh
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: {what} is not valid {enc.upper()} ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{p}: {what} is not a readable CSV ({exc}); save it as plain UTF-8 CSV") from None
