"""The running stack as the UI sees it: one client of the control socket.

The UI runs in another process than `devstack up` and reaches it only through
here (JSON lines on `.devstack/control.sock`, see runtime/control.py). The calls
mirror the StackAPI of issue 14 (statuses, a subscription to state changes and to
output, start/stop/restart with a reason), so the UI follows it when the supervisor
exposes it in-process. Each call opens its own connection: several UIs at once, and
closing one, change nothing for the stack.

Once an `up` has ended, `wait_for_up` waits for the next one of the same repo: its
socket (where `.devstack/control.path` says, as every client finds it) answering a
connection. Nothing tells a process of a socket's appearance without a file watcher,
so it looks, in growing pauses up to RECONNECT_PAUSE's longest (as the control
server's accept loop pauses): one stat a second while no `up` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.core.errors import DevstackError
from devstack.runtime import control

CLIENT = "devstack ui"  # restarts read "asked by `devstack ui`"
# One record may carry a whole log file's tail (files rotate at 5 MB; JSON may escape).
MAX_RECORD = 64 * 1024 * 1024
RECONNECT_PAUSE = (0.05, 1.0)  # first and longest pause between looks for the next `up`


@dataclass(frozen=True)
class ServiceRow:
    """One service's status, as the running stack reports it."""

    name: str
    state: str
    pid: int | None = None
    started_at: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    port: int | None = None
    detail: str = ""
    reason: str = ""  # why it last restarted

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> ServiceRow:
        # `reason` is the StackAPI's name (issue 14); `restart_reason` that of `ps --json`.
        return cls(
            name=str(row["name"]),
            state=str(row["state"]),
            pid=row.get("pid"),
            started_at=row.get("started_at"),
            restarts=int(row.get("restarts") or 0),
            last_exit=row.get("last_exit"),
            port=row.get("port"),
            detail=str(row.get("detail") or ""),
            reason=str(row.get("reason") or row.get("restart_reason") or ""),
        )


@dataclass(frozen=True)
class LogBatch:
    name: str  # "" for devstack's own line about every service
    lines: list[str]
    from_file: bool  # the log file's past (it may hold start separators), not live


class StackClient:
    """Talks to the `devstack up` running for `root`; errors are DevstackError.

    `on_silence` hears when the statuses stream has been silent for `silence` seconds,
    heartbeats included (the `up` is stopped with Ctrl+Z, or stuck): with the error
    that says so, then with None once it speaks again. The stream is kept meanwhile:
    an `up` resumed with `fg` goes on where it was."""

    def __init__(self, root: Path, silence: float = control.CLIENT_TIMEOUT) -> None:
        self.root = root
        self.silence = silence
        self.on_silence: Callable[[DevstackError | None], None] | None = None

    async def statuses(self) -> AsyncGenerator[list[ServiceRow], None]:
        """Every service's status now, then again after each change, until the stack ends."""
        async for message in self._stream("watch", heeded=True):
            yield [ServiceRow.of(row) for row in message["services"]]

    async def output(self, tail: int) -> AsyncIterator[LogBatch]:
        """The last `tail` lines of each service's log file, then live lines, until the end."""
        first = True
        async for message in self._stream("logs-follow", tail=tail):
            if first:
                first = False
                continue  # the server's yes
            if "skipped" in message:  # the UI fell behind: the log files have them all
                said = f"[devstack] {message['skipped']} lines skipped: the UI fell behind"
                yield LogBatch("", [said], from_file=False)
            else:
                yield LogBatch(message["name"], list(message["lines"]), message["from"] == "file")

    async def wait_for_up(self, pause: float = RECONNECT_PAUSE[0]) -> None:
        """Return once a `devstack up` of this repo answers on its socket: the one
        that runs now, or the next one started. `pause` is the first wait between
        looks; each is twice the last, RECONNECT_PAUSE's longest at most."""
        while not await self.answers():
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_PAUSE[1])

    async def answers(self) -> bool:
        """Whether an `up` accepts a connection on the socket now (a socket a killed
        `up` left refuses it)."""
        path = control.recorded_socket_path(self.root)
        if not path.exists():
            return False  # the common case while no `up` runs: a stat, no socket
        try:
            _, writer = await asyncio.open_unix_connection(path)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        return True

    async def restart(self, name: str) -> None:
        await self._request("restart", services=[name], by=CLIENT)

    async def stop(self, name: str) -> None:
        await self._request("stop", services=[name])

    async def start(self, name: str) -> None:
        await self._request("start", services=[name])

    async def type_into(self, name: str, text: str) -> None:
        """Type `text` at the terminal of a `tty: true` service."""
        await self._request("input", services=[name], data=text)

    async def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        async for message in self._stream(op, **fields):
            return message
        raise AssertionError("unreachable: _stream yields or raises")

    async def _stream(
        self, op: str, heeded: bool = False, **fields: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """The replies to `op`; `heeded`: its silence is told to `on_silence`."""
        reader, writer = await self._connect()
        try:
            writer.write(control.encode({"op": op, **fields}))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            answered = False
            while line := await self._read_line(reader, heeded):
                message = json.loads(line)  # replies: control.decode's limit is for requests
                if not message.get("ok", True):
                    raise control.error_from_reply(message)
                if message.get("alive"):
                    continue  # a sign of life while an answer takes long
                answered = True
                yield message
            if not answered:
                raise control.not_running(self.root)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_line(self, reader: asyncio.StreamReader, heeded: bool = False) -> bytes:
        told = self.on_silence if heeded else None
        silent = False
        while True:
            try:
                if told is None:
                    return await reader.readline()
                # Cancelled, readline leaves what it read in the reader's buffer.
                line = await asyncio.wait_for(reader.readline(), self.silence)
            except TimeoutError:
                if told is not None and not silent:  # said once; the wait goes on
                    silent = True
                    told(await asyncio.to_thread(self._why_silent))
                continue
            except (ValueError, ConnectionError) as error:  # ValueError: past MAX_RECORD
                raise DevstackError.single(
                    f"lost the devstack up of {self.root}: {error}", exit_status=1
                ) from None
            if told is not None and silent and line:  # at its end the stream says so
                told(None)
            return line

    def _why_silent(self) -> DevstackError:
        """Stopped (Ctrl+Z) or stuck, as `devstack ps` would say (reads the run's pid)."""
        return control.no_answer(self.root, self.silence)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = control.recorded_socket_path(self.root)
        try:
            return await asyncio.open_unix_connection(path, limit=MAX_RECORD)
        except OSError:
            raise control.not_running(self.root) from None
