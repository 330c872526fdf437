"""runtime/lean.py: asyncio without ssl, and hashes without OpenSSL, that are the same."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from devstack.runtime import lean


@pytest.mark.parametrize("data", [b"", b"/home/me/repo", bytes(range(256)) * 1000])
def test_the_hashes_are_hashlibs(data: bytes) -> None:
    assert lean.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert (
        lean.blake2b(data, digest_size=16).digest()
        == hashlib.blake2b(data, digest_size=16).digest()
    )
    streamed = lean.blake2b(digest_size=32)
    streamed.update(data[:100])
    streamed.update(data[100:])
    assert streamed.digest() == hashlib.blake2b(data, digest_size=32).digest()


FRESH = """
import sys
from devstack.runtime import lean
lean.import_asyncio()
lean.sha256(b"x"), lean.blake2b(b"x")
import asyncio.base_events
print(sorted({"ssl", "_ssl", "_hashlib"} & set(sys.modules)), asyncio.base_events.ssl)
import ssl  # still importable, for the https probe
print(ssl.OPENSSL_VERSION.split()[0], asyncio.base_events.ssl)
"""


def test_asyncio_is_imported_without_ssl_and_ssl_stays_importable() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRESH], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[] None", "OpenSSL None"]


PATHSPEC = """
import sys
from devstack.core.globs import compile_globs
globs = compile_globs(["*.log", "!keep.log"])
print("typing_extensions" in sys.modules, globs.matches("a.log"), globs.matches("keep.log"))
import typing_extensions  # still importable for whoever needs it
print(typing_extensions.__name__)
"""


def test_pathspec_is_imported_without_typing_extensions_and_works() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PATHSPEC], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["False True False", "typing_extensions"]


def test_asyncio_already_imported_is_left_as_it_is() -> None:
    import asyncio

    assert lean.import_asyncio() is asyncio
    assert "ssl" in sys.modules  # this test process imported asyncio with it


def test_releasing_freed_memory_leaves_the_process_working() -> None:
    kept = [bytes(1000) for _ in range(1000)]
    lean.release_freed_memory()  # glibc: malloc_trim; elsewhere only the collection
    assert sum(map(len, kept)) == 1_000_000


SHOWN = """
import sys
from devstack.core.secrets import fingerprint
from devstack.core.doctor import _which
print(fingerprint("hunter2"), sorted({"_hashlib", "bz2", "lzma"} & set(sys.modules)))
print(_which("sh", "/bin:/usr/bin") is not None)
"""


def test_a_fingerprint_and_doctors_which_leave_openssl_and_compressors_out() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SHOWN], capture_output=True, text=True, check=True, timeout=60
    )
    digest = hashlib.sha256(b"hunter2").hexdigest()[:6]
    assert done.stdout.splitlines() == [f"7 chars, #{digest} []", "True"]


THREADS_ALLOCATE = """
import ctypes, sys, threading
from devstack.runtime import lean
if sys.argv[1] == "one":
    lean.one_malloc_arena()
def allocate():
    kept = [bytearray(4096) for _ in range(200)]  # malloc's, not Python's small-object arenas
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


@pytest.mark.skipif(not lean._glibc(), reason="malloc arenas are glibc's")
def test_threads_allocate_from_one_arena() -> None:
    def arenas(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", THREADS_ALLOCATE, mode],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stderr.count("Arena ")

    assert arenas("many") > 1  # what each thread would get without it
    assert arenas("one") == 1
