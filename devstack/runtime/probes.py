"""Readiness probes: is a service ready yet, and if it never got there, what was seen last.

Four kinds, from `ready:` in devstack.yaml: `http` (a URL answers 2xx), `tcp` (a port
accepts a connection), `log` (a line of the service's output matches a regex) and `cmd`
(a command exits 0, run with the service's env and cwd). http, tcp and cmd are tried
every `interval` until `timeout`: there is no event for "a port opened". The log probe
waits on the service's output through `Output.subscribe`, so it never polls.

A probe is armed before its service is spawned (the log probe must not miss a line
printed at once), then awaited with `wait()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from devstack.core.model import ReadyProbe

ATTEMPT_TIMEOUT = 2.0  # one http/tcp/cmd try; a hung answer must not eat the whole timeout
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class LineSource(Protocol):
    """What the log probe needs from `runtime.output.Output`."""

    def subscribe(self, callback: Callable[[str, list[str]], None]) -> Callable[[], None]: ...


@dataclass(frozen=True)
class ProbeOutcome:
    ready: bool
    seen: str  # the last thing the probe saw: "HTTP 503", "connection refused", a line

    def describe(self, probe: ReadyProbe) -> str:
        """One line for people: what was probed, and what it saw last."""
        return f"{describe_probe(probe)} (last saw: {self.seen})"


def describe_probe(probe: ReadyProbe) -> str:
    """What a probe that timed out never got: `http://localhost:3000/ never answered 2xx`."""
    return {
        "http": f"{probe.target} never answered 2xx",
        "tcp": f"{probe.target} never accepted a connection",
        "log": f"no output line matched {probe.target!r}",
        "cmd": f"`{probe.target}` never exited 0",
    }[probe.kind]


class Probe(ABC):
    """One armed probe for one instance of a service."""

    def __init__(self, spec: ReadyProbe) -> None:
        self.spec = spec
        self.seen = "nothing yet"

    async def wait(self) -> ProbeOutcome:
        """Ready, or not ready after `spec.timeout` with the last thing seen."""
        try:
            async with asyncio.timeout(self.spec.timeout):
                await self.passed()
            return ProbeOutcome(True, self.seen)
        except TimeoutError:
            return ProbeOutcome(False, self.seen)
        finally:
            self.close()

    @abstractmethod
    async def passed(self) -> None:
        """Return once the service is ready; never on failure (the timeout ends it)."""

    def close(self) -> None:
        """Release what the probe holds (a subscription); safe to call twice."""
        return None


class _RetryingProbe(Probe):
    """Tries again every `interval`, remembering what each failed try saw."""

    async def passed(self) -> None:
        while True:
            started = time.monotonic()
            if await self.attempt():
                return
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(self.spec.interval - elapsed, 0.0))

    @abstractmethod
    async def attempt(self) -> bool:
        """One try; on failure set `self.seen` to what it found."""


class HttpProbe(_RetryingProbe):
    async def attempt(self) -> bool:
        url = urlsplit(self.spec.target)
        secure = url.scheme == "https"
        host = url.hostname or "localhost"
        port = url.port or (443 if secure else 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT):
                status = await _http_status(host, port, path, _insecure_tls() if secure else None)
        except TimeoutError:
            self.seen = f"no answer within {ATTEMPT_TIMEOUT:g}s"
            return False
        except (OSError, ValueError) as error:
            self.seen = _describe_error(error)
            return False
        self.seen = f"HTTP {status}"
        return 200 <= status < 300


async def _http_status(host: str, port: int, path: str, tls: ssl.SSLContext | None) -> int:
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        host_header = f"[{host}]" if ":" in host else host
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\n"
            "User-Agent: devstack-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split(maxsplit=2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:60]!r}")
    return int(parts[1])


def _insecure_tls() -> ssl.SSLContext:
    # Dev servers use self-signed certificates; a readiness probe checks that the server
    # answers, it does not authenticate it or send anything secret.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TcpProbe(_RetryingProbe):
    async def attempt(self) -> bool:
        host, _, port = self.spec.target.rpartition(":")
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT):
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except TimeoutError:
            self.seen = f"no connection within {ATTEMPT_TIMEOUT:g}s"
            return False
        except OSError as error:
            self.seen = _describe_error(error)
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


class CmdProbe(_RetryingProbe):
    def __init__(self, spec: ReadyProbe, cwd: Path, env: Mapping[str, str]) -> None:
        super().__init__(spec)
        self.cwd = cwd
        self.env = dict(env)

    async def attempt(self) -> bool:
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                self.spec.target,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # so the whole try can be killed as one group
            )
        except OSError as error:
            self.seen = _describe_error(error)
            return False
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT):
                output, _ = await process.communicate()
        except TimeoutError:
            self.seen = f"still running after {ATTEMPT_TIMEOUT:g}s"
            return False
        finally:
            _kill_group(process)
            await process.wait()
        if process.returncode == 0:
            return True
        last = _last_line(output.decode("utf-8", "replace"))
        self.seen = f"exit {process.returncode}" + (f": {last}" if last else "")
        return False


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The try's own session: kills the probe command and anything it started.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class LogProbe(Probe):
    """Ready when a line of the service's output matches; subscribed from construction."""

    def __init__(self, spec: ReadyProbe, service: str, lines: LineSource) -> None:
        super().__init__(spec)
        self.service = service
        self.pattern = re.compile(spec.target)
        self.matched: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seen = "no output"
        self._unsubscribe: Callable[[], None] | None = lines.subscribe(self._on_lines)

    def _on_lines(self, name: str, lines: list[str]) -> None:
        if name != self.service or self.matched.done() or not lines:
            return
        for line in lines:
            if self.pattern.search(ANSI_ESCAPE.sub("", line)):
                self.matched.set_result(None)
                self.close()
                return
        self.seen = repr(_shorten(lines[-1]))

    async def passed(self) -> None:
        await self.matched

    def close(self) -> None:
        if self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            unsubscribe()


def arm(
    spec: ReadyProbe, *, service: str, cwd: Path, env: Mapping[str, str], lines: LineSource
) -> Probe:
    """A probe for one instance of `service`; call before spawning it, then `wait()`."""
    from devstack.core.plan import resolved_probe  # `${PORT}` in a ready URL (issue 11)

    spec, _ = resolved_probe(spec, env)  # undefined names: doctor stopped `up` already
    if spec.kind == "http":
        return HttpProbe(spec)
    if spec.kind == "tcp":
        return TcpProbe(spec)
    if spec.kind == "cmd":
        return CmdProbe(spec, cwd, env)
    return LogProbe(spec, service, lines)


def _describe_error(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return _shorten(lines[-1]) if lines else ""


def _shorten(text: str, limit: int = 200) -> str:
    text = ANSI_ESCAPE.sub("", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
