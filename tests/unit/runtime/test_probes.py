"""Readiness probes against real local servers, sockets and processes."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import trustme

from devstack.core.errors import Location
from devstack.core.model import ReadyProbe
from devstack.runtime.probes import ProbeOutcome, arm, describe_probe

HERE = Location("devstack.yaml", 1)


def spec(kind: str, target: str, timeout: float = 5.0) -> ReadyProbe:
    return ReadyProbe(kind, target, HERE, timeout=timeout, interval=0.02)  # type: ignore[arg-type]


class Lines:
    """A stand-in for Output's subscription side: delivers lines to subscribers."""

    def __init__(self) -> None:
        self.subscribers: list[Callable[[str, list[str]], None]] = []

    def subscribe(self, callback: Callable[[str, list[str]], None]) -> Callable[[], None]:
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def emit(self, name: str, *lines: str) -> None:
        for callback in list(self.subscribers):
            callback(name, list(lines))


def probe(kind: str, target: str, timeout: float = 5.0, **kw: object) -> ProbeOutcome:
    async def main() -> ProbeOutcome:
        armed = arm(
            spec(kind, target, timeout),
            service="api",
            cwd=kw.get("cwd", Path.cwd()),  # type: ignore[arg-type]
            env=kw.get("env", {"PATH": "/usr/bin:/bin"}),  # type: ignore[arg-type]
            lines=kw.get("lines", Lines()),  # type: ignore[arg-type]
        )
        if (during := kw.get("during")) is not None:
            asyncio.get_running_loop().call_soon(during)  # type: ignore[arg-type]
        return await armed.wait()

    return asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def probed(target: str, timeout: float = 5.0) -> ProbeOutcome:
    """One http(s) probe of `target`, awaited in the running loop (beside a server)."""
    armed = arm(spec("http", target, timeout), service="api", cwd=Path.cwd(), env={}, lines=Lines())
    return await armed.wait()


async def serve_http(
    statuses: list[int], tls: ssl.SSLContext | None = None
) -> tuple[asyncio.Server, int]:
    """An HTTP server answering each request with the next status (the last one repeats);
    HTTPS with `tls`."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


def self_signed_tls() -> ssl.SSLContext:
    """A server's TLS, with a certificate from a CA nobody trusts (a dev server's)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_http_ready_after_503s() -> None:
    async def main() -> tuple[ProbeOutcome, int]:
        statuses = [503, 503, 204]
        server, port = await serve_http(statuses)
        async with server:
            outcome = await probed(f"http://127.0.0.1:{port}/health")
        return outcome, len(statuses)

    outcome, left = asyncio.run(main())
    assert outcome == ProbeOutcome(True, "HTTP 204")
    assert left == 1  # it asked again after each 503


def test_http_timeout_reports_last_status() -> None:
    async def main() -> ProbeOutcome:
        server, port = await serve_http([500])
        async with server:
            return await probed(f"http://127.0.0.1:{port}/", timeout=0.3)

    outcome = asyncio.run(main())
    assert outcome == ProbeOutcome(False, "HTTP 500")
    assert outcome.describe(spec("http", "http://x/")) == (
        "http://x/ never answered 2xx (last saw: HTTP 500)"
    )


def test_https_ready_after_503_from_a_self_signed_server() -> None:
    async def main() -> tuple[ProbeOutcome, int]:
        statuses = [503, 200]
        server, port = await serve_http(statuses, tls=self_signed_tls())
        async with server:
            outcome = await probed(f"https://localhost:{port}/health")
        return outcome, len(statuses)

    outcome, left = asyncio.run(main())
    assert outcome == ProbeOutcome(True, "HTTP 200")
    assert left == 1  # a full exchange per try: the 503 was read through TLS too


def test_https_to_a_plain_http_server_says_tls_failed() -> None:
    async def main() -> ProbeOutcome:
        async def answer_in_plain(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await reader.read(1)  # the client's hello, not a request: as http.server does
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        return await _https_probe_of(answer_in_plain)

    outcome = asyncio.run(main())
    assert outcome == ProbeOutcome(False, "TLS failed: wrong version number")


def test_https_to_a_server_that_hangs_up_during_the_handshake() -> None:
    async def main() -> ProbeOutcome:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)  # the client's hello has begun
            writer.close()

        return await _https_probe_of(hang_up)

    outcome = asyncio.run(main())
    assert not outcome.ready
    assert "eof" in outcome.seen.lower(), outcome.seen  # OpenSSL words it differently by version


async def _https_probe_of(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> ProbeOutcome:
    """One https probe (0.3 s) of a local server that answers with `handler`."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        return await probed(f"https://127.0.0.1:{port}/", timeout=0.3)


def test_http_refused() -> None:
    outcome = probe("http", f"http://127.0.0.1:{free_port()}/", timeout=0.3)
    assert outcome == ProbeOutcome(False, "connection refused")


def test_tcp_waits_for_the_port_to_open() -> None:
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def open_port() -> None:
        listener.bind(("127.0.0.1", port))
        listener.listen()

    async def main() -> ProbeOutcome:
        armed = arm(
            spec("tcp", f"127.0.0.1:{port}"), service="api", cwd=Path.cwd(), env={}, lines=Lines()
        )
        waiting = asyncio.create_task(armed.wait())
        # Open the port only after a try has been refused, so both paths are exercised.
        while armed.seen != "connection refused":
            await asyncio.sleep(0.01)
        open_port()
        return await waiting

    with listener:
        assert asyncio.run(main()).ready


def test_tcp_timeout() -> None:
    outcome = probe("tcp", f"127.0.0.1:{free_port()}", timeout=0.3)
    assert outcome == ProbeOutcome(False, "connection refused")


def test_log_matches_a_line_of_its_own_service_through_colour_codes() -> None:
    lines = Lines()

    def speak() -> None:
        lines.emit("other", "Local worker ready")  # another service's line does not count
        lines.emit("api", "booting", "\x1b[32mLocal worker\x1b[0m ready on :3000")

    outcome = probe("log", r"Local worker ready", lines=lines, during=speak)
    assert outcome.ready
    assert lines.subscribers == []  # unsubscribed once matched


def test_log_timeout_reports_the_last_line() -> None:
    lines = Lines()
    outcome = probe(
        "log",
        "ready",
        timeout=0.2,
        lines=lines,
        during=lambda: lines.emit("api", "starting", "listening soon"),
    )
    assert outcome == ProbeOutcome(False, "'listening soon'")
    assert lines.subscribers == []


def test_log_timeout_without_output() -> None:
    assert probe("log", "ready", timeout=0.1) == ProbeOutcome(False, "no output")


def test_cmd_runs_with_the_service_env_and_cwd(tmp_path: Path) -> None:
    command = 'test "$TOKEN" = yes && test -f ready.flag'
    outcome = probe(
        "cmd",
        command,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TOKEN": "yes"},
        during=lambda: (tmp_path / "ready.flag").touch(),
    )
    assert outcome.ready


def test_cmd_timeout_reports_exit_status_and_output(tmp_path: Path) -> None:
    outcome = probe("cmd", "echo first; echo 'db not up' >&2; exit 3", timeout=0.3, cwd=tmp_path)
    assert outcome == ProbeOutcome(False, "exit 3: db not up")
    assert describe_probe(spec("cmd", "pg_isready")) == "`pg_isready` never exited 0"


def test_cmd_still_running_at_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    outcome = probe("cmd", "sleep 30 & sleep 31; echo never", timeout=0.3, cwd=tmp_path)
    assert not outcome.ready
    left = [
        p
        for p in psutil.process_iter(["cwd", "status"])
        if p.info["cwd"] == str(tmp_path) and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    psutil.wait_procs(left, timeout=5)
    assert not [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
