"""The platform layer: which implementation each OS gets, the socket path limits, and
the portable implementation's answers, run here on Linux (issue 15)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from devstack.core import doctor
from devstack.runtime import control, platform
from devstack.runtime.platform import LinuxPlatform, PortablePlatform

if TYPE_CHECKING:
    from devstack.runtime.platform import Platform

TIMEOUT = 10.0


@pytest.fixture
def fresh_choice() -> Iterator[None]:
    """`platform.current()` chooses again in the test, and as before after it."""
    saved = list(platform._current)
    platform._current.clear()
    yield
    platform._current[:] = saved


@pytest.mark.parametrize(
    ("system", "environ", "kind", "limit"),
    [
        ("linux", {}, LinuxPlatform, 107),
        ("linux", {"DEVSTACK_PORTABLE": "0"}, LinuxPlatform, 107),
        ("linux", {"DEVSTACK_PORTABLE": "1"}, PortablePlatform, 107),  # the kernel's limit
        ("darwin", {}, PortablePlatform, 103),
        ("darwin", {"DEVSTACK_PORTABLE": "0"}, PortablePlatform, 103),
        ("freebsd14", {}, PortablePlatform, 103),
        ("sunos5", {}, PortablePlatform, 103),  # unknown: the smaller limit
    ],
)
def test_each_os_gets_its_implementation_and_path_limit(
    system: str, environ: dict[str, str], kind: type, limit: int
) -> None:
    chosen = platform.choose(system, environ)
    assert isinstance(chosen, kind)
    assert chosen.socket_path_limit == limit
    assert bool(chosen.caveat) == (kind is PortablePlatform)


def test_on_macos_a_socket_path_of_104_bytes_is_too_long(
    fresh_choice: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The known bug of issue 15: 104-107 bytes passed the Linux check, then failed to bind.
    monkeypatch.setattr(sys, "platform", "darwin")
    assert isinstance(platform.current(), PortablePlatform)
    root = Path("/") / ("r" * (104 - 1 - len("/x/.devstack/control.sock"))) / "x"
    preferred = root / ".devstack" / "control.sock"
    assert len(os.fsencode(preferred)) == 104  # the size of macOS's sun_path, NUL included
    assert not control.fits_af_unix(preferred)
    assert control.fits_af_unix(Path(str(preferred)[1:]))  # 103 fit
    chosen = control.choose_socket_path(root, {}, 1000)
    assert chosen != preferred and control.fits_af_unix(chosen)


def test_on_linux_the_same_path_fits(fresh_choice: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DEVSTACK_PORTABLE", raising=False)
    assert isinstance(platform.current(), LinuxPlatform)
    assert control.fits_af_unix(Path("/" + "r" * 106))
    assert not control.fits_af_unix(Path("/" + "r" * 107))


def test_the_choice_is_made_once(fresh_choice: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSTACK_PORTABLE", "1")
    first = platform.current()
    monkeypatch.setenv("DEVSTACK_PORTABLE", "0")
    assert platform.current() is first


# -- the portable implementation, run here ---------------------------------------------------

PORTABLE = PortablePlatform(107)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, DEVSTACK_MARK="here")
    child = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    yield child
    child.kill()
    child.wait(TIMEOUT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares with /proc")
def test_portable_reads_what_proc_says(sleeper: subprocess.Popen[bytes]) -> None:
    proc = psutil.Process(sleeper.pid)
    deadline = time.monotonic() + TIMEOUT
    while proc.cmdline() != ["sleep", "300"]:  # until it has exec'd: its env is then its own
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert PORTABLE.stat(sleeper.pid) == LinuxPlatform().stat(sleeper.pid)
    assert PORTABLE.environ(sleeper.pid) == LinuxPlatform().environ(sleeper.pid)
    assert PORTABLE.environ(sleeper.pid)["DEVSTACK_MARK"] == "here"
    assert PORTABLE.children(os.getpid()) is None  # psutil answers instead
    assert sleeper.pid in (LinuxPlatform().children(os.getpid()) or set())


def test_portable_has_no_subreaper_pidfds_or_inotify_doorbell() -> None:
    assert not PORTABLE.become_subreaper()
    assert not PORTABLE.is_subreaper()
    assert PORTABLE.pidfds([psutil.Process()]) is None
    assert PORTABLE.inotify_descriptors() == set()
    assert not PORTABLE.procfs


def test_portable_wait_gone_sees_an_exit_and_a_process_still_running(
    sleeper: subprocess.Popen[bytes],
) -> None:
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        procs = [psutil.Process(sleeper.pid), psutil.Process(other.pid)]
        os.kill(sleeper.pid, signal.SIGTERM)  # a zombie until we wait: gone all the same
        assert PORTABLE.wait_gone(procs, 0.5) == [procs[1]]
    finally:
        other.kill()
        other.wait(TIMEOUT)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Under /tmp: macOS's pytest tmp_path is too long for a socket's path."""
    directory = Path(tempfile.mkdtemp(prefix="ds-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory)


@pytest.mark.parametrize("chosen", [PORTABLE, LinuxPlatform()], ids=["portable", "linux"])
def test_await_gone_sees_an_exit_and_a_process_still_running_without_a_thread(
    sleeper: subprocess.Popen[bytes], chosen: Platform
) -> None:
    if isinstance(chosen, LinuxPlatform) and not sys.platform.startswith("linux"):
        pytest.skip("pidfds are Linux's")
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)

    async def main() -> list[psutil.Process]:
        procs = [psutil.Process(sleeper.pid), psutil.Process(other.pid)]
        threads = threading.active_count()
        waiting = asyncio.ensure_future(chosen.await_gone(procs, 1.0))
        await asyncio.sleep(0.05)
        assert threading.active_count() == threads  # waited for on the loop itself
        sleeper.terminate()  # a zombie until we wait: gone all the same
        return await waiting

    try:
        assert asyncio.run(main()) == [psutil.Process(other.pid)]
    finally:
        other.kill()
        other.wait(TIMEOUT)


def _served_from(directory: Path) -> tuple[socket.socket, socket.socket, socket.socket]:
    path = directory / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(path))
    listener.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(os.fspath(path))
    accepted, _ = listener.accept()
    return listener, client, accepted


@pytest.mark.parametrize(("mode", "vouched"), [(0o700, True), (0o755, False)])
def test_the_portable_peer_check_knows_the_uid_or_the_directory_vouches_for_it(
    short_dir: Path, mode: int, vouched: bool
) -> None:
    directory = short_dir / "private"
    directory.mkdir()
    directory.chmod(mode)
    listener, client, accepted = _served_from(directory)
    with listener, client, accepted:
        if sys.platform == "darwin" or "bsd" in sys.platform:  # LOCAL_PEERCRED
            assert PORTABLE.peer_uid(accepted) == os.getuid()
            return
        # Linux has no LOCAL_PEERCRED: only a private directory tells who can connect.
        assert PORTABLE.peer_uid(accepted) == (os.getuid() if vouched else None)
        assert LinuxPlatform().peer_uid(accepted) == os.getuid()


# -- what doctor tells a user of the portable implementation ---------------------------------


@pytest.mark.parametrize(
    ("system", "environ", "says"),
    [
        ("linux", {}, None),
        ("darwin", {}, "note: on macOS, without a child subreaper"),
        ("freebsd14", {}, "note: on this platform, without a child subreaper"),
        ("linux", {"DEVSTACK_PORTABLE": "1"}, "note: on DEVSTACK_PORTABLE=1 (macOS's code paths)"),
    ],
)
def test_doctor_notes_the_weaker_guarantee_where_it_is_weaker(
    system: str, environ: dict[str, str], says: str | None
) -> None:
    note = doctor.platform_note(system, platform.choose(system, environ).caveat)
    if says is None:
        assert note is None
    else:
        assert note is not None and note.startswith(says)
        assert "clears its environment" in note and "hint:" in note
