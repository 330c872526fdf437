"""Reading a file the user wrote (devstack.yaml, an env file) as text, or saying why not.

Only regular files are read (a FIFO would block forever, issue 11), opened without
blocking; the size is bounded; a dangling or looping symlink, a directory, and an
encoding other than UTF-8 each get a message naming the file, the line and the fix.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from devstack.core.errors import DevstackError, Location

MAX_BYTES = 16 * 1024 * 1024  # far above any config or env file; bounds what is read

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")


def read_text(path: Path, display: str) -> str | None:
    """The file's text; None when nothing is at `path`; DevstackError when it cannot be read."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _unreadable(display, error.strerror or str(error)) from None
    data = _read_regular(path, display)
    return decode(data, display)


def _read_regular(path: Path, display: str) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        target = os.readlink(path) if os.path.islink(path) else "?"
        raise _unreadable(
            display,
            f"it is a symbolic link to {target}, which does not exist",
            "fix the link, or point it at an existing file",
        ) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _unreadable(
                display, "it is a symbolic link that loops", "replace the link with the file"
            ) from None
        if error.errno == errno.EISDIR:
            raise _unreadable(display, "it is a directory", "name a file") from None
        raise _unreadable(display, error.strerror or str(error)) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise _unreadable(display, "it is a directory", "name a file")
        if not stat.S_ISREG(mode):
            raise _unreadable(
                display, "it is not a regular file (a FIFO or a device?)", "name a regular file"
            )
        with os.fdopen(os.dup(descriptor), "rb") as file:
            data = file.read(MAX_BYTES + 1)
    finally:
        os.close(descriptor)
    if len(data) > MAX_BYTES:
        raise _unreadable(display, f"it is larger than {MAX_BYTES // 2**20} MB")
    return data


def decode(data: bytes, display: str) -> str:
    """UTF-8 text (a UTF-8 byte-order mark dropped), or a problem naming encoding and line."""
    if data.startswith(_UTF32_BOMS) or data.startswith(_UTF16_BOMS) or _looks_utf16(data):
        encoding = "UTF-32" if data.startswith(_UTF32_BOMS) else "UTF-16"
        raise _unreadable(
            display,
            f"it is {encoding} encoded, not UTF-8",
            f"save it as UTF-8, e.g. iconv -f {encoding} -t UTF-8 {display}",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start]
        guess = "Latin-1 or Windows-1252" if byte >= 0x80 else "not UTF-8"
        raise DevstackError.single(
            f"byte 0x{byte:02X} is not UTF-8 (the file looks {guess} encoded)",
            Location(display, line),
            f"save {display} as UTF-8, e.g. iconv -f latin1 -t UTF-8",
            code="encoding",
        ) from None


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a byte-order mark: ASCII text with a NUL beside every character."""
    sample = data[:200]
    return len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4 + 1


def _unreadable(display: str, why: str, hint: str | None = None) -> DevstackError:
    return DevstackError.single(
        f"cannot read {display}: {why}", Location(display), hint, code="unreadable"
    )
