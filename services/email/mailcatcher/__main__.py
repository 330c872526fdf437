"""`python3 -m mailcatcher`: SMTP on $EMAIL_SMTP_PORT, messages as JSON on $PORT/messages."""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import json
import os
import signal
import sys
import time
from typing import Any

from mailcatcher.smtp import Envelope, serve_session

MESSAGES: list[dict[str, Any]] = []
KEEP = int(os.environ.get("MAILCATCHER_KEEP", "500"))


def deliver(envelope: Envelope, data: bytes) -> int:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    body = parsed.get_body(("plain", "html"))
    message = {
        "id": MESSAGES[-1]["id"] + 1 if MESSAGES else 1,
        "from": envelope.sender,
        "to": envelope.recipients,
        "subject": str(parsed.get("Subject", "")),
        "body": body.get_content() if body is not None else "",
        "received_at": time.time(),
    }
    MESSAGES.append(message)
    del MESSAGES[:-KEEP]  # the oldest go first: it is a dev inbox, not an archive
    print(
        f"caught message {message['id']} from {message['from']} to "
        f"{', '.join(message['to'])}: {message['subject']}",
        flush=True,
    )
    return int(message["id"])


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await reader.readline()
        while (await reader.readline()).strip():
            pass  # headers: nothing here needs them
        parts = request.decode("latin-1").split()
        path = parts[1] if len(parts) > 1 else "/"
        status, kind, body = respond(path)
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def respond(path: str) -> tuple[str, str, bytes]:
    if path == "/health":
        return "200 OK", "application/json", b'{"ok": true}'
    if path == "/messages":
        return "200 OK", "application/json", json.dumps(MESSAGES, indent=2).encode()
    if path == "/":
        items = "".join(
            f"<li>{html.escape(m['subject'])} &rarr; {html.escape(', '.join(m['to']))}</li>"
            for m in reversed(MESSAGES)
        )
        page = f"<h1>Caught mail ({len(MESSAGES)})</h1><ul>{items}</ul>"
        return "200 OK", "text/html; charset=utf-8", page.encode()
    return "404 Not Found", "application/json", b'{"error": "try /messages"}'


async def main() -> int:
    smtp_port = int(os.environ.get("EMAIL_SMTP_PORT", "0") or 0)
    http_port = int(os.environ.get("PORT", "0") or 0)
    if not smtp_port or not http_port:
        print("mailcatcher needs EMAIL_SMTP_PORT and PORT", file=sys.stderr, flush=True)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    smtp = await asyncio.start_server(
        lambda r, w: serve_session(r, w, deliver), "127.0.0.1", smtp_port
    )
    web = await asyncio.start_server(serve_http, "127.0.0.1", http_port)
    print(
        f"catching mail on smtp://127.0.0.1:{smtp_port}, listed at http://127.0.0.1:{http_port}/",
        flush=True,
    )
    async with smtp, web:
        await stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
