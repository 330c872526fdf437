"""The pure part of `devstack ui`: bounded log buffers, search, the table's cells."""

from __future__ import annotations

import pytest

from devstack.ui.stack import ServiceRow
from devstack.ui.usage import Usage
from devstack.ui.view import (
    ENDED_DETAIL,
    LogBook,
    LogLine,
    ended,
    filtered,
    lifecycle_lines,
    matches,
    render_line,
    row_cells,
)


def test_the_log_book_keeps_the_last_lines_of_each_service_and_of_all() -> None:
    book = LogBook(max_lines=3)
    book.add("api", ["a1", "a2"])
    book.add("web", ["w1", "w2"])
    book.add("api", ["a3", "a4"])
    assert [line.text for line in book.lines("api")] == ["a2", "a3", "a4"]
    assert [line.text for line in book.lines("web")] == ["w1", "w2"]
    assert book.lines(None) == [LogLine("web", "w2"), LogLine("api", "a3"), LogLine("api", "a4")]
    book.note("[devstack] 5 lines skipped")
    assert book.lines("web")[-1].text == book.lines(None)[-1].text == "[devstack] 5 lines skipped"
    book.clear()  # a new `up`: its log files' tails come again
    assert book.lines("api") == book.lines(None) == []


@pytest.mark.parametrize(
    ("last_said", "shown"),
    [
        (ServiceRow("api", "running", pid=7, started_at=1.0, port=3000), "stopped"),
        (ServiceRow("api", "ready", pid=7, started_at=1.0), "stopped"),
        (ServiceRow("api", "stopping", pid=7), "stopped"),  # killed while stopping
        (ServiceRow("api", "backing-off", last_exit=1, restarts=2), "stopped"),
        (ServiceRow("api", "waiting-for-change", last_exit=1), "stopped"),
        (ServiceRow("api", "crashed", last_exit=1, reason="exited 1"), "crashed"),
        (ServiceRow("api", "exited", last_exit=0), "exited"),
        (ServiceRow("api", "stopped"), "stopped"),
    ],
)
def test_once_up_has_ended_no_service_is_shown_running(last_said: ServiceRow, shown: str) -> None:
    (row,) = ended([last_said])
    assert (row.state, row.pid, row.started_at, row.detail) == (shown, None, None, ENDED_DETAIL)
    # What it was is kept: how often it restarted, why, its last exit and port.
    assert (row.restarts, row.reason, row.last_exit, row.port) == (
        last_said.restarts,
        last_said.reason,
        last_said.last_exit,
        last_said.port,
    )


def test_a_log_files_start_separator_reads_as_devstacks_own_line() -> None:
    book = LogBook()
    shown = book.add("api", ["----- started 2026-01-02 03:04:05 pid 42 -----", "x"], from_file=True)
    assert [line.text for line in shown] == ["[devstack] started 2026-01-02 03:04:05 pid 42", "x"]
    # Live lines are the service's own: a look-alike is not rewritten.
    assert book.add("api", ["----- started x -----"])[0].text == "----- started x -----"


@pytest.mark.parametrize(
    ("text", "query", "found"),
    [
        ("GET /health 200", "health", True),
        ("GET /Health 200", "health", True),  # lower case query: any case
        ("GET /health 200", "Health", False),  # a capital: exact case
        ("GET /Health 200", "Health", True),
        ("", "x", False),
    ],
)
def test_search_is_smart_case(text: str, query: str, found: bool) -> None:
    assert matches(text, query) is found


def test_an_empty_search_keeps_every_line_and_prefixes_line_up() -> None:
    lines = [LogLine("api", "one"), LogLine("worker", "two")]
    assert filtered(lines, "") == lines
    assert [render_line(line, 6) for line in lines] == ["api    | one", "worker | two"]
    assert render_line(lines[0], None) == "one"


def test_a_row_shows_uptime_usage_and_why_it_last_restarted() -> None:
    row = ServiceRow(
        "api",
        "running",
        pid=7,
        started_at=100.0,
        restarts=2,
        port=3000,
        reason="src/app.py changed",
    )
    cells = [cell.plain for cell in row_cells(row, Usage(12.4, 3 * 1024 * 1024), now=225.0)]
    assert cells == [
        "api",
        "running",
        "7",
        "2m05s",
        "2",
        "12%",
        "3.0M",
        "3000",
        "src/app.py changed",
    ]
    waiting = ServiceRow("web", "starting", detail="waiting for api (ready)")
    assert row_cells(waiting, None, now=0.0)[-1].plain == "waiting for api (ready)"
    stopped = ServiceRow("jobs", "stopped")
    assert [cell.plain for cell in row_cells(stopped, None, now=0.0)][2:] == [
        "-",
        "-",
        "0",
        "-",
        "-",
        "-",
        "-",
    ]


def test_the_reason_is_read_under_either_name() -> None:
    assert ServiceRow.of({"name": "a", "state": "running", "reason": "x"}).reason == "x"
    assert ServiceRow.of({"name": "a", "state": "running", "restart_reason": "y"}).reason == "y"


RUNNING = ServiceRow("api", "running", pid=10, restarts=0)


@pytest.mark.parametrize(
    ("after", "said"),
    [
        (RUNNING, []),
        (
            ServiceRow("api", "running", pid=11, restarts=1, reason="app.py changed"),
            ["[devstack] pid 10 ended", "[devstack] started (pid 11): app.py changed"],
        ),
        (
            ServiceRow("api", "crashed", last_exit=1, restarts=0, reason="old"),
            ["[devstack] pid 10 ended (exit 1)"],
        ),
    ],
)
def test_the_pane_says_when_an_instance_ends_and_the_next_begins(
    after: ServiceRow, said: list[str]
) -> None:
    assert lifecycle_lines(RUNNING, after) == said
    assert lifecycle_lines(ServiceRow("api", "stopped"), RUNNING) == ["[devstack] started (pid 10)"]


def test_up_ui_holds_the_stream_back_then_prints_its_last_lines() -> None:
    import io

    from devstack.ui.foreground import HeldTerminal

    terminal = io.BytesIO()
    held = HeldTerminal(terminal, keep=2)
    held.write(b"a | 1\na | 2\n")
    held.write(b"a | 3\n")
    assert terminal.getvalue() == b""
    held.release()
    held.write(b"devstack > stopping\n")
    assert terminal.getvalue() == b"a | 2\na | 3\ndevstack > stopping\n"
