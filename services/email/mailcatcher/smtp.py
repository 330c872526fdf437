"""The small subset of SMTP that smtplib needs: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_LINE = 1 << 20


@dataclass
class Envelope:
    sender: str = ""
    recipients: list[str] = field(default_factory=list)


Deliver = Callable[[Envelope, bytes], int]


def address(argument: str) -> str:
    """`FROM:<a@b.c> SIZE=12` -> `a@b.c`."""
    _, _, rest = argument.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1 : rest.find(">")]
    return rest.split(" ", 1)[0]


async def serve_session(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deliver: Deliver
) -> None:
    async def reply(line: str) -> None:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    envelope = Envelope()
    await reply("220 mailcatcher ESMTP ready")
    try:
        while raw := await reader.readline():
            verb, _, argument = raw.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb in ("HELO", "EHLO"):
                await reply("250 mailcatcher")
            elif verb == "MAIL":
                envelope = Envelope(sender=address(argument))
                await reply("250 OK")
            elif verb == "RCPT":
                envelope.recipients.append(address(argument))
                await reply("250 OK")
            elif verb == "DATA":
                if not envelope.recipients:
                    await reply("503 RCPT first")
                    continue
                await reply("354 End data with <CR><LF>.<CR><LF>")
                message_id = deliver(envelope, await read_data(reader))
                envelope = Envelope()
                await reply(f"250 OK: caught as message {message_id}")
            elif verb == "RSET":
                envelope = Envelope()
                await reply("250 OK")
            elif verb == "NOOP":
                await reply("250 OK")
            elif verb == "QUIT":
                await reply("221 Bye")
                break
            else:
                await reply(f"502 {verb} not implemented")
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def read_data(reader: asyncio.StreamReader) -> bytes:
    lines = []
    while True:
        line = await reader.readline()
        if not line or line in (b".\r\n", b".\n"):
            return b"".join(lines)
        lines.append(line[1:] if line.startswith(b"..") else line)  # dot-unstuffing
