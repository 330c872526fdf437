"""The watcher's doorbell and its fallback, with real files, inotify and signals.

The doorbell is SIGIO from watchfiles' inotify descriptor; it needs the loop in the
main thread. A loop in another thread cannot have it, and the watcher polls instead:
both ways, a save must restart the service that watches the file.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from devstack.runtime import platform
from devstack.runtime.watcher import (
    NOTIFY_LAG_MS,
    ContentHashes,
    Doorbell,
    collect,
    open_notify,
    watch_project,
)
from tests.fakes import FakeStack
from tests.support import make_repo

TIMEOUT = 30.0


async def until_said(supervisor: FakeStack, start: str) -> None:
    while not (await asyncio.wait_for(supervisor.said.get(), TIMEOUT)).startswith(start):
        pass


def run_in_thread(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run(main()) in a thread of its own, its error raised here."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(TIMEOUT * 2)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


@pytest.fixture
def main_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the doorbell needs the main thread (signals)")


@pytest.fixture
def inotify() -> None:
    if platform.current().name != "linux":  # macOS; DEVSTACK_PORTABLE=1 (issue 15)
        pytest.skip("the doorbell needs an inotify descriptor")


@pytest.mark.parametrize("where", ["main thread: doorbell", "other thread: polling"])
def test_a_save_restarts_the_service_that_watches_it(
    tmp_path: Path, where: str, main_thread: None
) -> None:
    make_repo(
        tmp_path,
        """
        services:
          api: {cmd: python app.py, watch: [app.py]}
          jobs: {cmd: python jobs.py, watch: [jobs.py]}
        """,
        {"app.py": "A = 1\n", "jobs.py": "J = 1\n"},
    )
    # Without inotify (macOS, DEVSTACK_PORTABLE=1), the main thread polls too.
    ringing = where.startswith("main") and platform.current().name == "linux"

    async def scenario() -> None:
        supervisor = FakeStack.of_repo(tmp_path)
        watcher = asyncio.create_task(watch_project(supervisor, shell={}, cli_env={}))
        await until_said(supervisor, "watching for changes:")
        assert (signal.getsignal(signal.SIGIO) != signal.SIG_DFL) == ringing
        for n in range(2, 5):  # the bell rings again after each batch
            (tmp_path / "app.py").write_text(f"A = {n}\n")
            change = await asyncio.wait_for(supervisor.restarts.get(), TIMEOUT)
            assert change == (["api"], "app.py changed")
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        # SIGIO (whose default action ends the process) comes no more
        assert signal.getsignal(signal.SIGIO) == signal.SIG_DFL

    if ringing:
        asyncio.run(scenario())
    else:
        run_in_thread(scenario)


def test_the_doorbell_rings_for_a_change_that_collect_then_hands_over(
    tmp_path: Path, main_thread: None, inotify: None
) -> None:
    async def scenario() -> None:
        notify, descriptor = await asyncio.to_thread(open_notify, tmp_path)
        with notify:
            bell = Doorbell.install(descriptor)
            assert bell is not None
            try:
                (tmp_path / "a.py").write_text("A = 1\n")
                assert await bell.wait(TIMEOUT)
                stop = threading.Event()
                raw = await asyncio.to_thread(collect, notify, NOTIFY_LAG_MS, stop)
                assert isinstance(raw, set)
                assert str(tmp_path / "a.py") in {path for _, path in raw}
                with bell.muted():  # no SIGIO per event while the watcher looks anyway
                    assert not fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ASYNC
                assert fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ASYNC
            finally:
                bell.close()
            assert not fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ASYNC
            assert signal.getsignal(signal.SIGIO) == signal.SIG_DFL

    asyncio.run(scenario())


def test_without_a_descriptor_or_the_main_thread_there_is_no_doorbell(
    tmp_path: Path, inotify: None
) -> None:
    async def no_descriptor() -> None:
        assert Doorbell.install(None) is None

    async def not_the_main_thread() -> None:
        notify, descriptor = await asyncio.to_thread(open_notify, tmp_path)
        with notify:
            assert descriptor is not None
            assert Doorbell.install(descriptor) is None
            assert not fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ASYNC

    asyncio.run(no_descriptor())
    run_in_thread(not_the_main_thread)
    assert signal.getsignal(signal.SIGIO) == signal.SIG_DFL


def test_hashing_never_opens_a_fifo_and_tells_big_files_by_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.runtime import watcher

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * 64)
    monkeypatch.setattr(watcher, "HASH_LIMIT", 16)
    hashes = watcher.ContentHashes()
    # Issue 11 §2: open() of a FIFO without a writer blocked the event loop for good.
    finished = threading.Event()
    worker = threading.Thread(
        target=lambda: (hashes.remember([str(fifo), str(big)]), finished.set()), daemon=True
    )
    worker.start()
    assert finished.wait(10), "hashing blocked on a FIFO"
    assert hashes.changed([str(fifo)]) == []
    os.utime(big, ns=(0, 12_345))
    assert hashes.changed([str(big)]) == [str(big)]


def test_content_hashes_tell_edits_from_rewrites(tmp_path: Path) -> None:
    files = [tmp_path / "app" / "index.ts", tmp_path / "app" / "lib" / "index.ts"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("export {}\n")
    app, lib = (str(path) for path in files)
    hashes = ContentHashes()
    hashes.remember([app, lib])
    assert lib in hashes and str(tmp_path / "app" / "other.ts") not in hashes
    files[0].write_text("export {}\n")  # saved unchanged
    assert hashes.changed([app, lib]) == []
    files[0].write_text("export const x = 1\n")
    assert hashes.changed([app, lib]) == [app]
    assert hashes.changed([app]) == []  # the new content is the one remembered
    files[1].unlink()
    assert hashes.changed([lib]) == [lib]
    assert lib not in hashes and app in hashes
    files[1].write_text("export {}\n")  # back: a change, from nothing
    assert hashes.changed([lib]) == [lib]


def test_content_hashes_keep_each_folder_apart_through_additions_and_removals(
    tmp_path: Path,
) -> None:
    """The dense layout (issue 16): names sorted per folder, digests beside them; files
    added, removed and rewritten in one batch, and a folder emptied, keep every other
    file's digest where it was."""
    folders = [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "c"]
    paths = [folder / f"{name}.ts" for folder in folders for name in ("m", "z", "a", "k")]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"// {path.name} in {path.parent.name}\n")
    hashes = ContentHashes()
    hashes.remember(str(path) for path in paths)
    assert all(str(path) in hashes for path in paths)
    for path in paths:
        path.write_text(path.read_text())  # rewritten unchanged
    assert hashes.changed(str(path) for path in paths) == []
    added = [tmp_path / "a" / "b.ts", tmp_path / "a" / "zz.ts"]
    for path in added:
        path.write_text("new\n")
    paths[0].unlink()  # a/m.ts
    paths[1].write_text("edited\n")  # a/z.ts
    batch = [str(path) for path in (*added, paths[0], paths[1], paths[2], paths[3])]
    assert hashes.changed(batch) == batch[:4]
    assert str(paths[0]) not in hashes and all(str(path) in hashes for path in added)
    assert hashes.changed(str(path) for path in [*added, *paths[1:]]) == []
    for path in paths[4:8]:
        path.unlink()  # a/b emptied: its layout goes, a's and c's stay
    assert hashes.changed(str(path) for path in paths[4:8]) == [str(p) for p in paths[4:8]]
    assert hashes.changed(str(path) for path in [*added, *paths[1:4], *paths[8:]]) == []


def test_content_hashes_count_a_removed_folders_files_as_changed(tmp_path: Path) -> None:
    """A folder removed or moved away is reported as its own path only (inotify's
    IN_MOVED_FROM / IN_DELETE on the folder): its remembered files are what changed."""
    old = tmp_path / "tasks" / "old"
    files = [old / "a.py", old / "deep" / "b.py", tmp_path / "tasks" / "keep.py"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    hashes = ContentHashes()
    hashes.remember(str(path) for path in files)
    assert hashes.holds_below(str(old)) and hashes.holds_below(str(tmp_path / "tasks"))
    assert not hashes.holds_below(str(tmp_path / "tasks" / "ol"))  # a prefix, not a folder
    (old / "deep" / "b.py").unlink()
    (old / "a.py").unlink()
    (old / "deep").rmdir()
    old.rmdir()
    assert sorted(hashes.changed([str(old)])) == sorted(str(path) for path in files[:2])
    assert not hashes.holds_below(str(old)) and str(files[2]) in hashes
    assert hashes.changed([str(tmp_path / "gone.tmp")]) == []  # never seen: nothing
