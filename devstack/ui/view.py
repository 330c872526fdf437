"""What the UI shows, as plain data: the service table's cells, the bounded log
buffers with their search, and the key list. No Textual here; app.py draws it.

Log buffers keep the last `max_lines` lines per service and as many for the "all
services" view: a service that prints without end costs bounded memory, and the
pane only ever holds what the buffer holds (toolong keeps huge files responsive by
never holding more than it shows; we never hold more than the bound).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text

from devstack.runtime.control import LOG_SEPARATOR_PREFIX, is_separator
from devstack.ui.stack import ServiceRow
from devstack.ui.usage import Usage

MAX_LINES = 10_000  # per service, and for the all-services view
SYSTEM_PREFIX = "[devstack] "
STACK_DOWN = "the stack is down: waiting for the next devstack up"
NOT_ANSWERING = "devstack up does not answer (stopped with Ctrl+Z?)"
ENDED_DETAIL = "devstack up ended"
ENDED_STATES = ("stopped", "crashed", "exited")  # what a service may still say once up ended

# Colour says the same as the word beside it (NO_COLOR loses nothing).
STATE_STYLES = {
    "ready": "bold green",
    "running": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "stopping": "yellow",
    "backing-off": "dark_orange",
    "crashed": "bold red",
    "waiting-for-change": "red",
    "stopped": "dim",
    "exited": "dim",
}

# WHY: why it last restarted (the file or variable that changed), else why it waits.
# Fixed widths (what the widest value needs): cells that change every second never
# shift the columns; WHY runs to the screen's edge, the pane title has it whole.
COLUMNS = (
    ("STATE", 11),  # "waiting-for-change" is cut; the pane title has it whole
    ("PID", 7),
    ("UP", 6),
    ("RST", 3),
    ("CPU", 4),
    ("MEM", 6),
    ("PORT", 5),
    ("WHY", 200),
)


def columns(names: Iterable[str]) -> list[tuple[str, int]]:
    """The table's columns for these service names: SERVICE as wide as the longest."""
    return [("SERVICE", max([len("SERVICE"), *(len(name) for name in names)])), *COLUMNS]


@dataclass(frozen=True)
class LogLine:
    name: str
    text: str


class LogBook:
    """The recent lines of every service, and of all of them interleaved, bounded."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self.max_lines = max_lines
        self._by_service: dict[str, deque[str]] = {}
        self._all: deque[LogLine] = deque(maxlen=max_lines)

    def add(self, name: str, lines: Iterable[str], *, from_file: bool = False) -> list[LogLine]:
        """Keep `name`'s new lines; returns them as they are to be shown."""
        shown = [LogLine(name, as_shown(line) if from_file else line) for line in lines]
        own = self._by_service.setdefault(name, deque(maxlen=self.max_lines))
        own.extend(line.text for line in shown)
        self._all.extend(shown)
        return shown

    def note(self, text: str) -> LogLine:
        """devstack's own line that concerns every service (lines the UI missed)."""
        line = LogLine("devstack", text)
        for own in self._by_service.values():
            own.append(text)
        self._all.append(line)
        return line

    def clear(self) -> None:
        """Forget every line (a new `up`: its log files' tails come again)."""
        self._by_service.clear()
        self._all.clear()

    def lines(self, name: str | None) -> list[LogLine]:
        """What the pane of `name` (None: all services) holds now."""
        if name is None:
            return list(self._all)
        return [LogLine(name, text) for text in self._by_service.get(name, ())]


def as_shown(line: str) -> str:
    """A log file's start separator as devstack's own message, like `devstack logs`."""
    if is_separator(line):
        inner = line.removeprefix(LOG_SEPARATOR_PREFIX).removesuffix(" -----")
        return SYSTEM_PREFIX + inner
    return line


def lifecycle_lines(before: ServiceRow, after: ServiceRow) -> list[str]:
    """devstack's own lines for what changed between two statuses of a service: live
    output carries no start separators, so the pane says when an instance ended and
    the next began (and why), as the log file's history does."""
    lines = []
    if before.pid is not None and after.pid != before.pid:
        ended = f" (exit {after.last_exit})" if after.last_exit is not None else ""
        lines.append(f"{SYSTEM_PREFIX}pid {before.pid} ended{ended}")
    if after.pid is not None and after.pid != before.pid:
        why = f": {after.reason}" if after.restarts > before.restarts and after.reason else ""
        lines.append(f"{SYSTEM_PREFIX}started (pid {after.pid}){why}")
    return lines


def ended(rows: Iterable[ServiceRow]) -> list[ServiceRow]:
    """The services once their `up` has ended: none runs (devstack leaves no process
    behind, even when killed: the guardian), whatever the last statuses said; one
    that had crashed or exited still says so."""
    return [
        dataclasses.replace(
            row,
            state=row.state if row.state in ENDED_STATES else "stopped",
            pid=None,
            started_at=None,
            detail=ENDED_DETAIL,
        )
        for row in rows
    ]


def render_line(line: LogLine, width: int | None) -> str:
    """Plain, copyable text: `api   | line` in the all-services view (`width` set)."""
    if width is None:
        return line.text
    return f"{line.name:<{width}} | {line.text}"


def matches(text: str, query: str) -> bool:
    """Smart case, as in less and vim: case matters only if the query has a capital."""
    if query != query.lower():
        return query in text
    return query.lower() in text.lower()


def filtered(lines: Sequence[LogLine], query: str) -> list[LogLine]:
    return [line for line in lines if matches(line.text, query)] if query else list(lines)


# -- the service table -----------------------------------------------------------------


def row_cells(row: ServiceRow, usage: Usage | None, now: float) -> tuple[Text, ...]:
    """The table cells of one service; `Text`, so a name is never read as markup."""
    uptime = None if row.started_at is None else max(now - row.started_at, 0.0)
    cells = (
        Text(row.name, style="bold"),
        Text(row.state, style=STATE_STYLES.get(row.state, "")),
        Text(_or_dash(row.pid)),
        Text(duration(uptime) if uptime is not None else "-"),
        Text(str(row.restarts)),
        Text(_cpu(usage)),
        Text(size(usage.memory_bytes) if usage else "-"),
        Text(_or_dash(row.port)),
        why(row),
    )
    return cells


def why(row: ServiceRow) -> Text:
    """Why it last restarted; or, not restarted yet, what it waits for."""
    if row.reason:
        return Text(row.reason, style="italic")
    return Text(row.detail or "-", style="dim")


def describe(row: ServiceRow) -> str:
    """The chosen service in the log pane's title: whatever the table had to cut."""
    parts = [row.name, row.state]
    if row.detail:
        parts[-1] += f" ({row.detail})"
    if row.restarts:
        times = "once" if row.restarts == 1 else f"{row.restarts} times"
        parts.append(f"restarted {times}" + (f", last: {row.reason}" if row.reason else ""))
    return " · ".join(parts)


def _cpu(usage: Usage | None) -> str:
    if usage is None or usage.cpu_percent is None:
        return "-"
    return f"{usage.cpu_percent:.0f}%"


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def duration(seconds: float) -> str:
    """`45s`, `3m12s`, `2h05m`, `3d04h`, as `devstack ps` shows it."""
    from devstack.commands.ps import format_duration

    return format_duration(seconds)


def size(count: int) -> str:
    from devstack.commands.ps import format_bytes

    return format_bytes(count)
