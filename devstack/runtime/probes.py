"""Readiness probes: is a service ready yet, and if it never got there, what was seen last.

Four kinds, from `ready:` in devstack.yaml: `http` (a URL answers 2xx), `tcp` (a port
accepts a connection), `log` (a line of the service's output matches a regex) and `cmd`
(a command exits 0, run with the service's env and cwd). http, tcp and cmd are tried
every `interval` until `timeout`: there is no event for "a port opened". The log probe
waits on the service's output through `Output.subscribe`, so it never polls.

A probe is armed before its service is spawned (the log probe must not miss a line
printed at once), then awaited with `wait()`.

An https probe speaks TLS through the `ssl` module's memory BIOs over a plain asyncio
connection, imported at its first try: `up` imports asyncio without ssl
(runtime/lean.py), and a stack without https probes never loads OpenSSL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from devstack.core.model import ReadyProbe

if TYPE_CHECKING:
    import ssl

ATTEMPT_TIMEOUT = 2.0  # one http/tcp/cmd try; a hung answer must not eat the whole timeout
STATUS_LINE_LIMIT = 64 * 1024  # bytes of an answer read for its status line, at most
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
                status = await _http_status(host, port, path, secure)
        except TimeoutError:
            self.seen = f"no answer within {ATTEMPT_TIMEOUT:g}s"
            return False
        except (OSError, ValueError) as error:
            self.seen = _describe_error(error)
            return False
        self.seen = f"HTTP {status}"
        return 200 <= status < 300


async def _http_status(host: str, port: int, path: str, secure: bool) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        stream = _TlsStream(reader, writer, host) if secure else _PlainStream(reader, writer)
        host_header = f"[{host}]" if ":" in host else host
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\n"
            "User-Agent: devstack-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        await stream.send(request.encode("latin-1"))
        status_line = await stream.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split(maxsplit=2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:60]!r}")
    return int(parts[1])


class _PlainStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def readline(self) -> bytes:
        return await self._reader.readline()


class _TlsStream(_PlainStream):
    """TLS over an open connection, with the `ssl` module's memory BIOs: OpenSSL
    encrypts into one and decrypts from the other, this class moves the bytes."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        import ssl

        super().__init__(reader, writer)
        self._want_read = ssl.SSLWantReadError
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        # The handshake happens on the first write, as with asyncio's own TLS.
        self._tls = _insecure_tls().wrap_bio(self._incoming, self._outgoing, server_hostname=host)

    async def send(self, data: bytes) -> None:
        await self._call(self._tls.write, data)

    async def readline(self) -> bytes:
        """The answer up to its first newline (STATUS_LINE_LIMIT at most)."""
        answer = b""
        while b"\n" not in answer and len(answer) < STATUS_LINE_LIMIT:
            chunk: bytes = await self._call(self._tls.read, STATUS_LINE_LIMIT)
            if not chunk:
                break
            answer += chunk
        return answer.partition(b"\n")[0]

    async def _call(self, operation: Callable[..., Any], *args: Any) -> Any:
        """Run a TLS operation, sending what it wrote and feeding it what it waits for;
        the TLS errors (a broken handshake, an EOF) are OSErrors, as the plain ones."""
        while True:
            try:
                result = operation(*args)
            except self._want_read:
                await self._flush()
                if self._incoming.eof:
                    raise ConnectionResetError("connection closed during TLS") from None
                received = await self._reader.read(STATUS_LINE_LIMIT)
                if received:
                    self._incoming.write(received)
                else:
                    self._incoming.write_eof()
                continue
            await self._flush()
            return result

    async def _flush(self) -> None:
        if pending := self._outgoing.read():
            await super().send(pending)


def _insecure_tls() -> ssl.SSLContext:
    # Dev servers use self-signed certificates; a readiness probe checks that the server
    # answers, it does not authenticate it or send anything secret. No CA store is
    # loaded for a check that is never made.
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
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
    if "$" in spec.target:  # `${PORT}` in a ready URL (issue 11): only then interpolate.py
        from devstack.core.plan import resolved_probe

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
    reason = getattr(error, "reason", None)  # an ssl.SSLError's, as "WRONG_VERSION_NUMBER"
    if type(error).__module__ == "ssl" and isinstance(reason, str):
        return f"TLS failed: {reason.lower().replace('_', ' ')}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return _shorten(lines[-1]) if lines else ""


def _shorten(text: str, limit: int = 200) -> str:
    text = ANSI_ESCAPE.sub("", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
