"""How log lines look: framing raw bytes into lines, prefixes, colours, devstack's own lines.

Pure: no I/O, no clock (times are passed in). `runtime/output.py` does the writing.
Service output is bytes and stays bytes: it is never parsed or interpreted on its way
to the terminal, so markup-looking text and colour codes pass through as the service
wrote them; only invalid UTF-8 is shown as U+FFFD, so that whatever reads devstack's
output as UTF-8 can (log files keep the bytes as written). The hot path works on whole
batches (one split, one join, one UTF-8 check per chunk of output), never a regex or a
decode per line.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Level = Literal["info", "warn", "error"]

MAX_LINE = 64 * 1024  # a longer line is shown as several lines of this many bytes
SEPARATOR = b" | "  # between the prefix and a service's own line
MARK = " \u25b8 "  # " ▸ ": devstack's own messages
DEVSTACK = "devstack"  # the prefix of messages about the whole stack

# Distinct ANSI foreground colours for service names; no red (errors are red).
PALETTE: tuple[bytes, ...] = (
    b"36",  # cyan
    b"32",  # green
    b"35",  # magenta
    b"34",  # blue
    b"33",  # yellow
    b"96",  # bright cyan
    b"92",  # bright green
    b"95",  # bright magenta
    b"94",  # bright blue
    b"93",  # bright yellow
)
RESET = b"\x1b[0m"
DIM = b"\x1b[2m"
BOLD = b"\x1b[1m"
LEVEL_STYLE: dict[str, bytes] = {"info": DIM, "warn": b"\x1b[33m", "error": b"\x1b[1;31m"}

# CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-byte escapes. None
# reaches past its line: a stray ESC ] must not swallow the lines after it.
ANSI_ESCAPE = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]"
)


def should_colour(isatty: bool, environ: Mapping[str, str]) -> bool:
    """Colour on a terminal; NO_COLOR (no-color.org) beats FORCE_COLOR, which beats the rest."""
    if environ.get("NO_COLOR"):
        return False
    force = environ.get("FORCE_COLOR")
    if force and force != "0":
        return True
    return isatty and environ.get("TERM") != "dumb"


def assign_colours(names: Iterable[str], taken: Mapping[str, int] | None = None) -> dict[str, int]:
    """A palette index per name: its own stable one (a hash) unless taken, then the next free.

    The hash keeps a service's colour the same across runs and selections; taking the next
    free one keeps colours distinct until the palette runs out, and even then a name never
    gets the colour of the name just before it.
    """
    colours = dict(taken or {})
    for name in names:
        if name in colours:
            continue
        used = set(colours.values())
        if len(used) >= len(PALETTE):
            used = {colours[next(reversed(colours))]} if colours else set()
        index = zlib.crc32(name.encode()) % len(PALETTE)
        while index in used:
            index = (index + 1) % len(PALETTE)
        colours[name] = index
    return colours


def split_lines(data: bytes, limit: int = MAX_LINE) -> tuple[list[bytes], bytes]:
    """The complete lines in `data` (no newline, CRLF read as LF, cut to `limit` bytes) and
    the unfinished rest.

    A longer line is cut into pieces of `limit` bytes, less up to 3 so as not to cut a
    UTF-8 character in two. A rest longer than `limit` gives up its pieces too, keeping 1
    to `limit` bytes, so any split of a byte string into chunks gives the same lines.
    """
    end = data.rfind(b"\n") + 1
    lines: list[bytes] = []
    if end:
        complete = data[:end]
        if b"\r" in complete:
            complete = complete.replace(b"\r\n", b"\n")
        lines = complete[:-1].split(b"\n")
        if len(complete) > limit + 1:
            lines = _cut(lines, limit)
    rest = data[end:]
    body = len(rest) - rest.endswith(b"\r")  # a CR may be the start of a CRLF
    while body > limit:
        cut = _cut_point(rest, limit)
        lines.append(rest[:cut])
        rest = rest[cut:]
        body -= cut
    return lines, rest


def _cut(lines: list[bytes], limit: int) -> list[bytes]:
    if all(len(line) <= limit for line in lines):
        return lines
    pieces: list[bytes] = []
    for line in lines:
        while len(line) > limit:
            cut = _cut_point(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        pieces.append(line)
    return pieces


def _cut_point(line: bytes, limit: int) -> int:
    """Where to cut a line longer than `limit`: before the character that byte `limit` is in."""
    for cut in range(limit, max(limit - 4, 0), -1):
        if line[cut] & 0xC0 != 0x80:  # not a UTF-8 continuation byte
            return cut
    return limit  # not UTF-8 there anyway


def displayable(data: bytes) -> bytes:
    """`data` with each invalid UTF-8 sequence as U+FFFD, so whatever reads devstack's
    output as UTF-8 can; valid text (nearly always ASCII) is returned as it is."""
    if data.isascii():
        return data
    try:
        data.decode()
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode()
    return data


def strip_ansi(data: bytes) -> bytes:
    """`data` without terminal escape sequences (what log files and subscribers get)."""
    return ANSI_ESCAPE.sub(b"", data) if b"\x1b" in data else data


def clock_column(now: float) -> bytes:
    """`HH:MM:SS.mmm` in local time."""
    seconds = int(now)
    millis = int((now - seconds) * 1000)
    return time.strftime("%H:%M:%S", time.localtime(seconds)).encode() + b".%03d" % millis


def start_separator(pid: int, now: float) -> bytes:
    """The line a service's log file gets each time it starts."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    return f"----- started {started} pid {pid} -----\n".encode()


@dataclass
class LineStyle:
    """Prefixes for a set of service names: padded to the longest, coloured or not."""

    names: Sequence[str]
    colour: bool
    timestamps: bool
    colours: dict[str, int] = field(default_factory=dict)
    _prefixes: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.colours = assign_colours(self.names, self.colours)
        self.width = max((len(name) for name in self.names), default=0)

    def prefix(self, name: str, now: float) -> bytes:
        """What goes before each of `name`'s own lines: `api   | `, coloured, timed."""
        prefix = self._prefixes.get(name)
        if prefix is None:
            label = name.ljust(self.width).encode(errors="replace") + SEPARATOR.rstrip()
            if self.colour:
                label = b"\x1b[%sm" % self._palette(name) + label + RESET
            prefix = self._prefixes[name] = label + b" "
        return self._stamp(now) + prefix if self.timestamps else prefix

    def lines(self, name: str, lines: Sequence[bytes], now: float) -> bytes:
        """A batch of `name`'s lines as one block of bytes for the terminal."""
        prefix = self.prefix(name, now)
        return displayable(prefix + (b"\n" + prefix).join(lines) + b"\n")

    def system(self, name: str | None, message: str, level: Level, now: float) -> bytes:
        """devstack's own message: `devstack ▸ text`, or `api   ▸ text` about one service.

        `▸` where a service's own lines have `|`, in plain text too, so what devstack
        says is never mistaken for what the service printed (and `grep '^api '` still
        shows both in order); in colour they are also bold, with dim/yellow/red text.
        """
        label = (name or DEVSTACK).ljust(self.width)
        head = (label + MARK.rstrip()).encode(errors="replace")
        style = LEVEL_STYLE.get(level, DIM)
        if self.colour:
            colour = b"\x1b[1;%sm" % self._palette(name) if name is not None else BOLD
            head = colour + head + RESET
        head = (self._stamp(now) if self.timestamps else b"") + head + b" "
        out = []
        for text in message.split("\n"):
            body = text.encode(errors="replace")
            out.append(head + (style + body + RESET if self.colour else body) + b"\n")
        return b"".join(out)

    def _palette(self, name: str) -> bytes:
        if name not in self.colours:  # output of a service nobody announced
            self.colours = assign_colours([name], self.colours)
        return PALETTE[self.colours[name]]

    def _stamp(self, now: float) -> bytes:
        column = clock_column(now)
        return (DIM + column + RESET if self.colour else column) + b" "
