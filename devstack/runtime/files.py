"""Writing a file whole or not at all: readers see the old content or the new, never a part."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str, mode: int = 0o666) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`.

    `mode` as for os.open (the umask applies). No fsync: what devstack writes this way
    (run.json, the socket's path, a new devstack.yaml) is cheap to lose in a power
    cut, and a truncated file reads as absent; the fsync cost `up` milliseconds.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
