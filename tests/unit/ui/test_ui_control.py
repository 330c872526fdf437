"""What `devstack ui` added to the control protocol: `watch` (statuses, then again on
each change) and `input` (text typed at a tty service).

The real server and client over a real socket, in front of the stand-in stack
(tests/fakes.py), which has the two calls the new ops make.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.core.errors import DevstackError
from devstack.runtime import control
from devstack.runtime.control import ProtocolError, parse_request
from tests.fakes import FakeStack
from tests.unit.runtime.test_control import ServerThread, _wait_for, three_services


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(three_services(), tmp_path) as running:
        yield running


def states(message: dict[str, Any]) -> dict[str, str]:
    return {row["name"]: row["state"] for row in message["services"]}


def test_watch_sends_the_statuses_then_again_on_a_change_until_the_client_leaves(
    server: ServerThread,
) -> None:
    supervisor = server.supervisor
    assert isinstance(supervisor, FakeStack)
    stream = control.open_stream(server.root, "watch")
    first = next(stream)
    assert first["ok"] and states(first) == dict.fromkeys(("api", "jobs", "mail"), "running")
    server.call(supervisor.change, "jobs", "crashed")
    assert states(next(stream))["jobs"] == "crashed"
    stream.close()
    _wait_for(lambda: not supervisor.state_subscribers, "the watcher to unsubscribe")


def test_input_reaches_the_named_service(server: ServerThread) -> None:
    control.request(server.root, "input", services=["api"], data="y\r")
    assert server.supervisor.typed == [("api", b"y\r")]


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ({"op": "input", "services": ["api"]}, "input needs 'data'"),
        ({"op": "input", "services": ["api", "jobs"], "data": "x"}, "exactly one service"),
    ],
)
def test_bad_new_requests_are_refused(message: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        parse_request(message)


def test_the_ui_client_takes_a_tail_bigger_than_a_request_may_be(server: ServerThread) -> None:
    from devstack.ui.stack import StackClient

    logs = server.root / ".devstack" / "logs"
    logs.mkdir()
    lines = [f"line {i} " + "x" * 100 for i in range(2000)]  # ~220 KB in one record
    (logs / "api.log").write_text("\n".join(lines) + "\n")

    async def first_batch() -> list[str]:
        async for batch in StackClient(server.root).output(tail=10_000):
            return batch.lines
        return []

    assert asyncio.run(first_batch()) == lines
    # Just rotated: the tail reaches into api.log.1.
    (logs / "api.log").rename(logs / "api.log.1")
    (logs / "api.log").write_text("after rotation\n")
    assert asyncio.run(first_batch()) == [*lines, "after rotation"]


def test_a_quiet_watch_says_it_is_alive(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "HEARTBEAT", 0.05)
    with control.connect(server.root, 10.0) as sock, sock.makefile("rb") as incoming:
        sock.sendall(control.encode({"op": "watch"}))
        assert json.loads(incoming.readline())["ok"]
        assert json.loads(incoming.readline())["alive"]  # nothing changed


def test_the_ui_client_tells_a_silent_up_and_its_return(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `up` stopped with Ctrl+Z sends nothing, heartbeats included (played here by
    heartbeats far apart): the UI hears so once, then that it answers again."""
    from devstack.ui.stack import StackClient

    monkeypatch.setattr(control, "HEARTBEAT", 3600.0)
    supervisor = server.supervisor
    assert isinstance(supervisor, FakeStack)
    heard: list[str | None] = []
    client = StackClient(server.root, silence=0.2)

    def silence(error: DevstackError | None) -> None:
        heard.append(error.problems[0].code if error is not None else None)
        if error is not None:  # the `up` goes on
            server.call(supervisor.change, "jobs", "crashed")

    client.on_silence = silence

    async def follow() -> list[str]:
        seen = []
        async with contextlib.aclosing(client.statuses()) as statuses:
            async for rows in statuses:
                seen.append({row.name: row.state for row in rows}["jobs"])
                if len(seen) == 2:
                    break
        return seen

    assert asyncio.run(asyncio.wait_for(follow(), 30)) == ["running", "crashed"]
    assert heard == ["not-answering", None]
