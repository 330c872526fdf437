"""`devstack up --ui`: the stack in this process, `devstack ui` in a child process on
the same terminal; quitting the UI stops the stack, as Ctrl+C does.

The UI is a child, not a part of this loop: the supervisor's loop never waits on
drawing, a UI that fails leaves the stack's guarantees as they were, and it is the
same `devstack ui` as anywhere else. While it runs, the stack's streamed output is
held back (it would tear the screen; the log files and the UI have it); once it has
closed, what devstack says while stopping reaches the terminal again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from devstack.runtime.supervisor import Supervisor

UI_EXIT_WAIT = 5.0  # seconds the UI gets to leave once the stack has ended


class HeldTerminal:
    """The stream `up --ui` gives Output: nothing reaches the terminal until `release`."""

    def __init__(self, terminal: BinaryIO) -> None:
        self._terminal = terminal
        self.released = False

    def write(self, data: bytes) -> int:
        if self.released:
            self._terminal.write(data)
        return len(data)

    def flush(self) -> None:
        if self.released:
            self._terminal.flush()

    def release(self) -> None:
        self.released = True


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
        supervisor.output.system(None, "devstack ui closed: stopping all services", "warn")
        supervisor.request_shutdown(None)
