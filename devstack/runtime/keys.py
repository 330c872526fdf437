"""Commands typed in the `up` terminal: `r` + Enter restarts every service,
`r NAME...` + Enter restarts those (like nodemon's `rs`).

`parse_line` is the pure part: a typed line -> what to do. `read_keys` reads the
terminal's lines as the loop reports them readable (no thread, no polling) and hands
restarts to the stack (`StackAPI`). Only meaningful when stdin is a terminal; `up` checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devstack.core.errors import DevstackError, Problem, unknown_name_error

if TYPE_CHECKING:
    from devstack.runtime.stackapi import StackAPI

HELP = "type r + Enter to restart every service, r NAME + Enter to restart one"
REASON = "r typed in the terminal"


@dataclass(frozen=True)
class Restart:
    names: tuple[str, ...]  # empty: every service of the run


@dataclass(frozen=True)
class Ignore:
    pass


def parse_line(line: str, known: Collection[str]) -> Restart | Ignore | Problem:
    """What a line typed in the `up` terminal asks for."""
    words = line.split()
    if not words:
        return Ignore()  # Enter alone: people make room in the scrollback
    if words[0] not in ("r", "rs"):
        return Problem(f"unknown command {line.strip()!r}", hint=HELP)
    unknown = [name for name in words[1:] if name not in known]
    if unknown:
        return unknown_name_error("service", unknown[0], known)
    return Restart(tuple(dict.fromkeys(words[1:])))


async def read_keys(stack: StackAPI) -> None:
    """Act on lines typed at the terminal until cancelled or stdin ends."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    descriptor = sys.stdin.fileno()
    pending = bytearray()

    def readable() -> None:
        # `devstack up &`: reading the terminal from the background would stop devstack
        # (SIGTTIN); it stops listening for keys instead.
        chunk = _read(descriptor) if _may_read(descriptor) else b""
        if chunk is None:
            return
        if not chunk:
            loop.remove_reader(descriptor)
            lines.put_nowait(None)
            return
        pending.extend(chunk)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            lines.put_nowait(line.decode("utf-8", "replace"))

    if not _may_read(descriptor):
        return
    loop.add_reader(descriptor, readable)
    restarts: set[asyncio.Task[None]] = set()
    try:
        while (line := await lines.get()) is not None:
            task = asyncio.ensure_future(_act(stack, line))
            restarts.add(task)  # a restart may take a while; the next line is read meanwhile
            task.add_done_callback(restarts.discard)
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(descriptor)
        for task in restarts:
            task.cancel()


def _may_read(descriptor: int) -> bool:
    """False when the terminal is ours and we are in the background."""
    try:
        return os.tcgetpgrp(descriptor) == os.getpgrp()
    except OSError:
        return True  # not our controlling terminal: reading it cannot stop us


def _read(descriptor: int) -> bytes | None:
    """What the terminal has for us; None for nothing after all, b"" at its end."""
    try:
        return os.read(descriptor, 4096)
    except BlockingIOError:
        return None
    except OSError:
        return b""


async def _act(stack: StackAPI, line: str) -> None:
    command = parse_line(line, stack.project.services)
    if isinstance(command, Ignore):
        return
    if isinstance(command, Problem):
        message = command.message + (f" ({command.hint})" if command.hint else "")
        stack.say(message, "warn")
        return
    # `r` alone: what runs (or failed), not what was stopped on purpose with `devstack stop`.
    names = list(command.names) or [status.name for status in stack.status()]
    try:
        await stack.restart(names, REASON, skip_stopped=not command.names)
    except DevstackError as error:
        stack.say(error.render(), "warn")
    except Exception as error:  # a bug: said in the terminal, the next line still works
        stack.say(f"internal error restarting {names}: {error!r}", "error")
