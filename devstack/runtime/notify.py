"""The one module that touches watchfiles: its Rust watcher, and the inotify
descriptor that watcher opened.

watchfiles' public `watch`/`awatch` wake up every `step_ms` to look for changes;
the file watcher needs to sleep until the kernel has news, so it drives watchfiles'
Rust watcher (`watchfiles._rust_notify.RustNotify`, private) itself, and finds the
inotify descriptor it opened (new in /proc/self/fd across its creation) to be woken
by SIGIO. Both are internals: pyproject.toml pins watchfiles to the range
tests/unit/test_watcher.py was run against, and any change of their shape has to
be made here only.

The Rust extension is loaded by itself, without running the `watchfiles` package's
`__init__`: that imports watch/awatch/run_process, and anyio and multiprocessing with
them (~1.5 MiB that `up` would keep all its life, issue 16), none of which devstack
uses. It goes into `sys.modules` under its own name, so a later `import watchfiles`
finds it there instead of initialising the extension twice.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from devstack.runtime import platform

if TYPE_CHECKING:
    from types import ModuleType

    from watchfiles._rust_notify import RustNotify

# What `watch` returns: the changes as (watchfiles.Change, path), or "timeout", or
# "stop" / "signal" (only after the stop event was set).
RawChanges = set[tuple[int, str]] | str
RUST_MODULE = "watchfiles._rust_notify"


def preload() -> None:
    """Load watchfiles' Rust part now (it takes a while): for a thread, off the loop."""
    _rust_part()


def _rust_part() -> ModuleType:
    """`watchfiles._rust_notify`, loaded without its package (see above)."""
    if (loaded := sys.modules.get(RUST_MODULE)) is not None:
        return loaded
    package = importlib.util.find_spec("watchfiles")  # found, not run: it is top-level
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("watchfiles is not installed", name="watchfiles")
    spec = importlib.machinery.PathFinder.find_spec(
        RUST_MODULE, list(package.submodule_search_locations)
    )
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no {RUST_MODULE} in {package.origin}", name=RUST_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[RUST_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[RUST_MODULE]
        raise
    return module


def watch_errors() -> tuple[type[Exception], ...]:
    """What watching may raise: the OS's errors, and watchfiles' own."""
    internal: type[Exception] = _rust_part().WatchfilesRustInternalError
    return (OSError, internal)


class Notifier:
    """A watchfiles watcher of one directory tree (recursive, permission errors
    ignored), and its inotify descriptor where there is one."""

    def __init__(self, notify: RustNotify, descriptor: int | None) -> None:
        self._notify = notify
        self.descriptor = descriptor

    def watch(
        self, debounce_ms: int, step_ms: int, timeout_ms: int, stop: threading.Event
    ) -> RawChanges:
        """Blocking (for a thread): wait up to `timeout_ms` (0: for ever) for a change,
        then gather changes until none came for `step_ms`, `debounce_ms` at most."""
        return self._notify.watch(debounce_ms, step_ms, timeout_ms, stop)

    def close(self) -> None:
        self._notify.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_notify(root: Path) -> tuple[Notifier, int | None]:
    """A watcher of `root` (blocking: adding a watch per directory takes a while), and
    its inotify descriptor (None where there is none: not Linux, DEVSTACK_PORTABLE=1,
    or polling)."""
    rust_notify: type[RustNotify] = _rust_part().RustNotify
    before = platform.current().inotify_descriptors()
    notify = rust_notify(
        [str(root)],  # watch_paths
        False,  # debug
        False,  # force_polling
        300,  # poll_delay_ms, when watchfiles falls back to polling
        True,  # recursive
        True,  # ignore_permission_denied: an unreadable directory is not an error
    )
    new = platform.current().inotify_descriptors() - before
    descriptor = new.pop() if len(new) == 1 else None
    return Notifier(notify, descriptor), descriptor
