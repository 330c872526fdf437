"""What the long-lived `devstack up` keeps out of its memory, and how it does without.

`up` runs for hours beside the services; what it has imported stays in its memory
(issue 16: idle, the tool's own processes below foreman's). Two imports cost far more
than they give it:

- `ssl`. asyncio imports it at its own import, only to offer TLS, and it brings
  OpenSSL's libcrypto and libssl (1.5 to 4 MiB of PSS, by how many other processes
  share libcrypto; a bare asyncio loop is ~10 MiB).
  `up` needs TLS for one thing, an https ready-probe, which drives the `ssl` module's
  memory BIOs over a plain asyncio connection itself (runtime/probes.py), the
  documented way to do TLS under a framework that owns the I/O. So `import_asyncio`
  imports asyncio with `ssl` marked missing (core/imports.py): `import ssl` works
  afterwards, asyncio's modules just never see it (asyncio's own TLS, `ssl=` of
  `open_connection`, says "stdlib ssl module not available" in this process).
- hashlib's OpenSSL backend. `import hashlib` loads `_hashlib`, and libcrypto with it,
  even for the hashes CPython also builds in. `sha256` and `blake2b` here come from
  those built-in modules (`_sha2`, `_sha256`, `_blake2`: private names, so hashlib
  stays the fallback where a build lacks them); the digests are the same.

Every thread that allocates gets a malloc arena of its own from glibc (the fast start's
line pump, asyncio's executor threads, watchfiles' notify thread), and each keeps its
own free pages: `one_malloc_arena` has them share the main one (M_ARENA_MAX=1, what
MALLOC_ARENA_MAX=1 does; set in-process, as that variable would reach the services):
~0.55 MiB less on the bench's idle stack. `up`'s threads seldom allocate at once, so
they hardly ever wait for each other's malloc.

And once the start is over (the first services settled, the watches in place), what it
freed is handed back: `release_freed_memory` collects the garbage, then asks glibc's
malloc to return the free pages it keeps inside its heaps (`malloc_trim`: 0.5 to 1 MiB
of start-up leftovers, .pyc data, parsed YAML, the threads' arenas) to the system.
A restart or a reload later leaves little behind (measured: PSS did not grow).

tests/integration/test_up_lean.py proves what a running `up` has not imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from devstack.core.imports import import_without

if TYPE_CHECKING:
    from types import ModuleType


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


def import_asyncio() -> ModuleType:
    """asyncio, imported without `ssl` unless ssl is imported already."""
    # asyncio's base_events, selector_events and sslproto `import ssl` only to offer TLS.
    return import_without("asyncio", "ssl")


def sha256(data: bytes = b"") -> Hash:
    """hashlib.sha256, without loading OpenSSL where CPython has its own."""
    try:
        from _sha2 import sha256 as builtin  # type: ignore[import-not-found]  # 3.12+
    except ImportError:
        try:
            from _sha256 import sha256 as builtin  # type: ignore[import-not-found]  # 3.11
        except ImportError:  # pragma: no cover - a Python built without it
            from hashlib import sha256 as builtin
    return builtin(data)


def blake2b(data: bytes = b"", *, digest_size: int = 64) -> Hash:
    """hashlib.blake2b (always CPython's own), without importing hashlib."""
    try:
        from _blake2 import blake2b as builtin
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import blake2b as builtin
    return builtin(data, digest_size=digest_size)


M_ARENA_MAX = -8  # glibc's malloc.h


def one_malloc_arena() -> None:
    """Have every thread allocate from glibc's main arena (before they start); nothing
    where the C library is not glibc."""
    if _glibc():
        import ctypes

        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)


def release_freed_memory() -> None:
    """Collect cyclic garbage, then give the memory malloc holds free back to the system
    (glibc only: elsewhere there is no malloc_trim, and nothing more is done)."""
    import gc

    gc.collect()
    if _glibc():
        import ctypes  # already imported on Linux, where becoming a subreaper needs it

        ctypes.CDLL(None).malloc_trim(0)


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))  # "glibc 2.36"; musl has none
    except (ValueError, OSError):  # a name this OS does not know (macOS)
        return False
