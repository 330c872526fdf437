"""`devstack up --ui`: the stack in this process, `devstack ui` in a child process on
the same terminal; quitting the UI stops the stack, as Ctrl+C does.

The UI is a child, not a part of this loop: the supervisor's loop never waits on
drawing, a UI that fails leaves the stack's guarantees as they were, and it is the
same `devstack ui` as anywhere else. While it runs, the stack's streamed output is
held back (it would tear the screen; the log files and the UI have it); once it has
closed, its last lines are printed and what devstack says while stopping follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from devstack.runtime.supervisor import Supervisor

UI_EXIT_WAIT = 5.0  # seconds the UI gets to leave once the stack has ended
KEEP_LINES = 20  # of the output held back, printed when the UI closes


class HeldTerminal:
    """The stream `up --ui` gives Output: held back until `release`, which prints the
    last `keep` lines held (how the stack got where it is), then lets the rest through."""

    def __init__(self, terminal: BinaryIO, keep: int = KEEP_LINES) -> None:
        self._terminal = terminal
        self._held: deque[bytes] = deque(maxlen=keep)  # bounded: the log files have it all
        self.released = False

    def write(self, data: bytes) -> int:
        if self.released:
            self._terminal.write(data)
        else:
            self._held.extend(data.splitlines(keepends=True))  # Output writes whole lines
        return len(data)

    def flush(self) -> None:
        if self.released:
            self._terminal.flush()

    def release(self) -> None:
        self.released = True
        self.write(b"".join(self._held))
        self._held.clear()
        self.flush()


async def run_ui(supervisor: Supervisor, config_file: Path, held: HeldTerminal) -> None:
    """Run `devstack ui` until it quits, then stop the stack; if the stack ends first,
    the UI (told to end with it) is waited for, then ended if it does not."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devstack", "-f", str(config_file), "ui", "--exit-with-stack"
    )
    try:
        await child.wait()
    finally:
        if child.returncode is None:  # the stack ended first: the UI sees it and leaves
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(child.wait()), UI_EXIT_WAIT)
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
                await child.wait()
        held.release()
    if not supervisor.shutting_down:
        supervisor.say("devstack ui closed: stopping all services", "warn")
        supervisor.request_shutdown(None)
