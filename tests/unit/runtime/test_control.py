"""The control channel (protocol, server, client) over a real Unix socket, the `r`
key's parsing, and the live-env diff.

The server runs in a thread with its own event loop, in front of a small stand-in
stack (tests/fakes.py) that records what it is asked; the CLI side is the real client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.commands.logs import format_lines
from devstack.commands.ps import format_bytes, format_duration, format_exit
from devstack.core.errors import DevstackError, Problem, unknown_name_error
from devstack.runtime import control
from devstack.runtime.control import (
    MAX_MESSAGE,
    ControlServer,
    ProtocolError,
    choose_socket_path,
    decode,
    encode,
    parse_request,
    tail_lines,
)
from devstack.runtime.keys import Ignore, Restart, parse_line
from devstack.runtime.liveenv import diff_env, mask_command, render_diff
from tests.fakes import FakeStack

SERVICES = ("api", "jobs", "mail")


# -- a stand-in stack ------------------------------------------------------------------


def three_services() -> FakeStack:
    """Three services running, each with PORT=8000."""
    project = SimpleNamespace(services=dict.fromkeys(SERVICES))
    env = SimpleNamespace(
        services={name: SimpleNamespace(values={"PORT": "8000"}) for name in SERVICES}
    )
    return FakeStack(project, env)


class ServerThread:
    """`control.serve` (or a ControlServer) on its own loop, in a thread."""

    def __init__(self, supervisor: FakeStack, root: Path, serving: Any = None) -> None:
        self.supervisor = supervisor
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self._serving = serving or (lambda: control.serve(supervisor, project=self.project))
        self.project = SimpleNamespace(root=root)
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))
        self.error: BaseException | None = None

    async def _main(self) -> None:
        self.task = asyncio.ensure_future(self._serving())
        await asyncio.sleep(0)  # the task's first step binds and listens
        self.ready.set()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        except BaseException as error:
            self.error = error
            self.ready.set()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(10)
        if self.error:
            raise self.error
        return self

    def call(self, function: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(function, *args)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(three_services(), tmp_path) as running:
        yield running


def raw_exchange(root: Path, data: bytes) -> list[dict[str, Any]]:
    """Send raw bytes, read every reply line until the server closes."""
    with control.connect(root) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as replies:
            return [json.loads(line) for line in replies]


# -- protocol --------------------------------------------------------------------------


def test_a_message_round_trips_with_its_version() -> None:
    assert decode(encode({"op": "ps"})) == {"v": 1, "op": "ps"}


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        (b"hello\n", "not a JSON message"),
        (b"\xff\xfe\n", "not a JSON message"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"op": "ps"}\n', "version None is not supported"),
        (b'{"v": 2, "op": "ps"}\n', "version 2 is not supported"),
        (b"x" * (MAX_MESSAGE + 1), "longer than"),
        # Issue 11 §2: these printed tracebacks in the `up` terminal.
        (b'{"v": 1, "tail": ' + b"9" * 5000 + b"}\n", "not a JSON message"),
        (b"[" * 30_000 + b"]" * 30_000 + b"\n", "not a JSON message"),
    ],
)
def test_bad_lines_are_refused_with_the_reason(line: bytes, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        decode(line)


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ({"op": "explode"}, "unknown op 'explode'"),
        ({"op": "restart"}, "needs at least one service"),
        ({"op": "stop", "services": "api"}, "list of service names"),
        ({"op": "stop", "services": [1]}, "list of service names"),
        ({"op": "env", "services": ["api", "jobs"]}, "exactly one"),
        ({"op": "logs-follow", "tail": -1}, "'tail'"),
        ({"op": "logs-follow", "tail": True}, "'tail'"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(message: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        parse_request(message)


def test_an_error_reply_keeps_the_hint_and_exit_status() -> None:
    problem = unknown_name_error("service", "apj", SERVICES)
    error = control.error_from_reply(control.error_reply([problem], 2))
    assert error.exit_status == 2
    assert error.problems == [Problem("unknown service 'apj'", hint="did you mean 'api'?")]


# -- where the socket is ---------------------------------------------------------------


def test_the_socket_is_in_the_repo_when_the_path_fits(tmp_path: Path) -> None:
    path = choose_socket_path(tmp_path, {}, 1000)
    assert path == tmp_path / ".devstack" / "control.sock"


def test_a_long_repo_path_moves_the_socket_to_the_runtime_dir(tmp_path: Path) -> None:
    root = tmp_path / ("deep" * 30)
    assert choose_socket_path(root, {"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000).parent == Path(
        "/run/user/1000"
    )
    fallback = choose_socket_path(root, {}, 1000)
    assert fallback.parent.name == "devstack-1000"
    assert control.fits_af_unix(fallback)
    assert fallback != choose_socket_path(tmp_path / ("other" * 30), {}, 1000)


def test_serving_a_long_repo_path_records_the_real_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    root = tmp_path / ("long-name" * 12)
    root.mkdir()
    with ServerThread(three_services(), root):
        recorded = Path((root / ".devstack" / "control.path").read_text().strip())
        assert recorded.parent == runtime
        assert control.request(root, "ps")["root"] == str(root)
    assert not recorded.exists()
    assert not (root / ".devstack" / "control.path").exists()


# -- the server ------------------------------------------------------------------------


def test_ps_lists_every_service(server: ServerThread) -> None:
    reply = control.request(server.root, "ps")
    assert reply["pid"] == os.getpid()
    assert [row["name"] for row in reply["services"]] == list(SERVICES)
    assert reply["services"][0]["pid"] == 100


def test_socket_and_directory_are_private(server: ServerThread) -> None:
    assert (server.root / ".devstack").stat().st_mode & 0o777 == 0o700
    assert (server.root / ".devstack" / "control.sock").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("op", "state"), [("restart", "running"), ("stop", "stopped")])
def test_actions_reach_the_supervisor_and_report_the_result(
    server: ServerThread, op: str, state: str
) -> None:
    reply = control.request(server.root, op, services=["jobs"])
    assert server.supervisor.calls == [(op, ("jobs",))]
    assert [(row["name"], row["state"]) for row in reply["services"]] == [("jobs", state)]


def test_unknown_names_come_back_as_an_error_with_a_suggestion(server: ServerThread) -> None:
    with pytest.raises(DevstackError) as raised:
        control.request(server.root, "restart", services=["jbos"])
    assert raised.value.exit_status == 2
    assert "unknown service 'jbos'" in raised.value.render()
    assert "did you mean 'jobs'?" in raised.value.render()


def test_down_asks_for_a_shutdown_and_names_the_process(server: ServerThread) -> None:
    assert control.request(server.root, "down")["pid"] == os.getpid()
    assert server.supervisor.shutdowns == 1
    assert server.supervisor.messages == ["devstack down: stopping all services"]


def test_env_gives_the_spawned_environment_and_pid(server: ServerThread) -> None:
    reply = control.request(server.root, "env", services=["api"])
    assert reply["pid"] == 100
    assert reply["values"]["PORT"] == "8000"
    assert reply["values"]["DEVSTACK_SERVICE"] == "api"
    assert reply["values"]["DEVSTACK_RUN_ID"] == "run-1"


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json\n",
        b"\x00\xff\xfe\n",
        b"[]\n",
        b'{"v":1,"op":"nuke"}\n',
        b"y" * (MAX_MESSAGE * 2),
        b"[" * 30_000 + b"]" * 30_000 + b"\n",
        b'{"v": 1, "op": "ps", "tail": ' + b"7" * 5000 + b"}\n",
    ],
)
def test_garbage_gets_an_error_and_the_server_keeps_answering(
    server: ServerThread, garbage: bytes
) -> None:
    [reply] = raw_exchange(server.root, garbage)
    assert reply["ok"] is False and reply["v"] == 1
    assert reply["error"]
    assert control.request(server.root, "ps")["services"]


def test_a_client_that_never_sends_its_request_is_told_and_closed(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "REQUEST_TIMEOUT", 0.1)
    with control.connect(server.root) as sock, sock.makefile("rb") as replies:
        reply = json.loads(replies.readline())
        assert "no request within" in reply["error"]
        assert replies.readline() == b""  # closed
    assert server.supervisor.messages == []


def test_idle_connections_beyond_the_cap_push_the_oldest_out(server: ServerThread) -> None:
    idle = [control.connect(server.root) for _ in range(control.MAX_IDLE * 3)]
    try:
        # The oldest are closed to make room; the newest stay; a request still works.
        assert control.request(server.root, "ps")["services"]
        idle[0].settimeout(10)
        assert idle[0].recv(1) == b""
    finally:
        for sock in idle:
            sock.close()


def test_out_of_fds_the_server_says_so_once_pauses_and_recovers(server: ServerThread) -> None:
    import resource

    path = str(server.root / ".devstack" / "control.sock")
    clients = [socket.socket(socket.AF_UNIX) for _ in range(20)]  # their fds exist now
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    messages = server.supervisor.messages
    fillers: list[int] = []
    try:
        # No descriptor left for accept() in this process (the server's thread too):
        # the limit just above the highest open one, and every hole below it filled.
        resource.setrlimit(resource.RLIMIT_NOFILE, (_highest_fd() + 1, hard))
        with contextlib.suppress(OSError):
            while True:
                fillers.append(os.dup(0))
        for client in clients:
            client.connect(path)
        _wait_for(lambda: any("cannot accept" in m for m in messages), "the EMFILE message")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)
    _wait_for(lambda: any("accepting connections again" in m for m in messages), "recovery")
    assert sum("cannot accept" in m for m in messages) == 1  # said once, not in a loop
    assert "Too many open files" in messages[0]
    for client in clients:
        client.close()
    assert control.request(server.root, "ps")["services"]


def _highest_fd() -> int:
    return max(
        int(fd) for fd in os.listdir("/proc/self/fd" if os.path.isdir("/proc") else "/dev/fd")
    )


def test_a_slow_answer_keeps_the_client_waiting_with_signs_of_life(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "HEARTBEAT", 0.05)
    done = threading.Event()

    async def slow_restart(names: list[str], reason: str) -> None:
        await asyncio.to_thread(done.wait, 10)

    server.supervisor.restart = slow_restart  # type: ignore[method-assign]
    stream = control.open_stream(server.root, "restart", timeout=0.3, services=["api"])
    timer = threading.Timer(0.6, done.set)  # twice the client's timeout
    timer.start()
    try:
        assert next(stream)["ok"] is True
    finally:
        timer.cancel()
        stream.close()


def test_an_up_that_does_not_answer_is_reported_not_waited_for(tmp_path: Path) -> None:
    import subprocess

    state = tmp_path / ".devstack"
    state.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(sleeper.pid, signal.SIGSTOP)  # an `up` stopped with Ctrl+Z
        (state / "run.json").write_text(json.dumps({"pid": sleeper.pid}))
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(state / "control.sock"))
            listener.listen(1)  # never accepts, never answers
            with pytest.raises(DevstackError, match="is stopped") as caught:
                next(control.open_stream(tmp_path, "ps", timeout=0.2))
            assert f"kill -CONT {sleeper.pid}" in str(caught.value.problems[0].hint)
            (state / "run.json").write_text(json.dumps({"pid": os.getpid()}))
            with pytest.raises(DevstackError, match=r"did not answer within 0\.2s"):
                next(control.open_stream(tmp_path, "ps", timeout=0.2))
            # Its backlog full, it still counts as running (doctor asks), without a hang.
            waiting = [socket.socket(socket.AF_UNIX) for _ in range(3)]
            for sock in waiting:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(str(state / "control.sock"))
            assert control._is_live(state / "control.sock", timeout=0.2)
            for sock in waiting:
                sock.close()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_down_waits_for_the_up_to_exit_but_not_for_a_stopped_one(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / ".devstack").mkdir()
    quick = subprocess.Popen(["true"])
    control.wait_for_exit(quick.pid, tmp_path, check_every=0.1)  # returns: it exited
    quick.wait()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / ".devstack" / "run.json").write_text(json.dumps({"pid": sleeper.pid}))
        os.kill(sleeper.pid, signal.SIGSTOP)
        with pytest.raises(DevstackError, match="is stopped"):
            control.wait_for_exit(sleeper.pid, tmp_path, check_every=0.1)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_follow_backlog_skips_what_does_not_fit_and_says_where() -> None:
    async def fill() -> list[dict[str, Any]]:
        backlog = control.FollowBacklog(limit=10)
        backlog.put("api", ["1234"])  # 5 bytes with its newline
        backlog.put("api", ["5678"])  # 10: full
        backlog.put("api", ["lost", "lost"])
        backlog.put("jobs", ["lost"])
        first = backlog.take()
        backlog.put("api", ["next"])
        return first + backlog.take()

    assert asyncio.run(fill()) == [
        {"name": "api", "lines": ["1234"], "from": "live"},
        {"name": "api", "lines": ["5678"], "from": "live"},
        {"skipped": 3},
        {"name": "api", "lines": ["next"], "from": "live"},
    ]


def test_a_client_that_says_nothing_and_leaves_is_harmless(server: ServerThread) -> None:
    assert raw_exchange(server.root, b"") == []
    assert control.request(server.root, "ps")["services"]


def test_another_user_is_refused(tmp_path: Path) -> None:
    supervisor = three_services()
    someone_else = os.getuid() + 1

    async def serve_as_someone_else() -> None:
        listener = control.bind_socket(tmp_path, {}, os.getuid())
        handler = ControlServer(supervisor, root=tmp_path, own_uid=someone_else).handle
        server = await asyncio.start_unix_server(handler, sock=listener)
        await server.serve_forever()

    refused = f"uid {os.getuid()} may not control"
    with ServerThread(supervisor, tmp_path, serving=serve_as_someone_else):
        with pytest.raises(DevstackError, match=refused):
            control.request(tmp_path, "stop", services=["api"])
        # A request too big to be sent before the refusal closes the connection: the
        # client's write fails, and it still reads and reports the refusal.
        with pytest.raises(DevstackError, match=refused):
            control.request(tmp_path, "stop", services=["x" * 4_000_000])
    assert supervisor.calls == []


# -- following logs --------------------------------------------------------------------


def test_follow_sends_the_tail_then_live_lines_until_the_client_leaves(
    server: ServerThread,
) -> None:
    logs = server.root / ".devstack" / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("one\ntwo\nthree\n")
    stream = control.open_stream(server.root, "logs-follow", services=["api"], tail=2)
    assert next(stream) == {"v": 1, "ok": True}
    assert next(stream)["lines"] == ["two", "three"]
    server.call(server.supervisor.emit, "jobs", "not wanted")
    server.call(server.supervisor.emit, "api", "four", "five")
    assert next(stream) == {"v": 1, "name": "api", "lines": ["four", "five"], "from": "live"}
    stream.close()  # the client leaves mid-stream
    subscribers = server.supervisor.output_subscribers
    _wait_for(lambda: not subscribers, "the follower to unsubscribe")
    assert control.request(server.root, "ps")["services"]


def test_follow_of_an_unknown_service_is_an_error(server: ServerThread) -> None:
    with pytest.raises(DevstackError, match="did you mean 'mail'"):
        next(control.open_stream(server.root, "logs-follow", services=["mial"]))


def test_tail_of_a_missing_log_or_a_fifo_is_empty_and_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "api.log")
    assert tail_lines(tmp_path / "api.log", 10) == []
    (tmp_path / "file").write_text("")
    assert tail_lines(tmp_path / "file" / "api.log", 10) == []  # .devstack is a file
    assert tail_lines(tmp_path / "missing.log", 10) == []


def test_tail_reads_the_end_of_a_big_file(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {n}\n" for n in range(5000)))
    assert tail_lines(log, 3, block=64) == ["line 4997", "line 4998", "line 4999"]
    assert tail_lines(log, 0) == []
    assert tail_lines(tmp_path / "missing.log", 5) == []
    (tmp_path / "short.log").write_text("only\n")
    assert tail_lines(tmp_path / "short.log", 10) == ["only"]


# -- no stack, stale sockets, ending ---------------------------------------------------


def test_no_socket_means_no_stack_running(tmp_path: Path) -> None:
    with pytest.raises(DevstackError, match=f"no devstack up is running in {tmp_path}$") as raised:
        control.request(tmp_path, "ps")
    assert raised.value.exit_status == 1


def test_a_stale_socket_is_reported_as_not_running_and_replaced(tmp_path: Path) -> None:
    (tmp_path / ".devstack").mkdir(mode=0o700)
    path = tmp_path / ".devstack" / "control.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening, closed: what a SIGKILLed up leaves
    with pytest.raises(DevstackError, match="no devstack up is running"):
        control.request(tmp_path, "ps")
    with ServerThread(three_services(), tmp_path):
        assert control.request(tmp_path, "ps")["services"]
    assert not path.exists()


def test_a_live_socket_is_not_taken_over(server: ServerThread) -> None:
    with pytest.raises(DevstackError, match="already answers"):
        control.bind_socket(server.root, {}, os.getuid())
    assert control.request(server.root, "ps")["services"]


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    done = threading.Event()
    for _ in range(1000):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# -- the `r` key -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("r", Restart(())),
        ("  r  \n", Restart(())),
        ("rs", Restart(())),
        ("r api", Restart(("api",))),
        ("r api jobs api", Restart(("api", "jobs"))),
        ("", Ignore()),
        ("   ", Ignore()),
    ],
)
def test_typed_lines(line: str, expected: object) -> None:
    assert parse_line(line, SERVICES) == expected


def test_typed_typos_get_a_hint() -> None:
    problem = parse_line("r jbos", SERVICES)
    assert isinstance(problem, Problem) and problem.hint == "did you mean 'jobs'?"
    other = parse_line("q", SERVICES)
    assert isinstance(other, Problem) and "r NAME" in (other.hint or "")


# -- live env diff ---------------------------------------------------------------------


def test_the_live_diff_names_what_changed_and_masks_secrets() -> None:
    intended = {"PORT": "8000", "API_TOKEN": "abc", "GONE": "1", "DEVSTACK_SERVICE": "api"}
    live = {
        "PORT": "9000",
        "API_TOKEN": "xyz",
        "EXTRA": "2",
        "PWD": "/x",
        "npm_lifecycle_event": "dev",
        "DEVSTACK_SERVICE": "api",
        "DEVSTACK_REPO": "/r",
    }
    diff = diff_env(intended, live)
    assert diff.changed == {"PORT": ("8000", "9000"), "API_TOKEN": ("abc", "xyz")}
    assert diff.added == {"EXTRA": "2"}
    assert diff.removed == {"GONE": "1"}
    assert diff.by_wrappers == ("PWD", "npm_lifecycle_event")
    text = render_diff("api", diff, process="pid 7 (node)")
    assert "changed  PORT       8000 -> 9000" in text
    assert "abc" not in text and "xyz" not in text and "••••" in text
    assert "removed  GONE" in text and "added    EXTRA" in text
    assert "abc -> xyz" in render_diff("api", diff, process="pid 7", reveal=True)


def test_an_unchanged_environment_says_so() -> None:
    diff = diff_env({"A": "1"}, {"A": "1", "SHLVL": "2"})
    assert diff.same
    assert "exactly what devstack gave it" in render_diff("api", diff, process="pid 7")


def test_command_lines_shown_with_the_live_env_hide_secrets() -> None:
    argv = ["/bin/sh", "-c", "API_TOKEN=abc DEBUG=1 DB=postgres://u:pw@h/db app"]
    assert mask_command(argv)[2] == "API_TOKEN=•••• DEBUG=1 DB=postgres://u:••••@h/db app"


def test_a_failing_action_is_reported_and_the_server_keeps_answering(
    server: ServerThread,
) -> None:
    async def broken(names: list[str]) -> None:
        raise RuntimeError("boom")

    server.supervisor.start = broken  # type: ignore[method-assign]
    with pytest.raises(DevstackError, match="internal error during start: RuntimeError"):
        control.request(server.root, "start", services=["api"])
    assert server.supervisor.messages == ["internal error during start: RuntimeError('boom')"]
    assert control.request(server.root, "ps")["services"]


# -- what ps and logs show -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "-"), (0, "0"), (3, "3"), (-15, "SIGTERM"), (-9, "SIGKILL"), (-99, "signal 99")],
)
def test_last_exit_column(value: int | None, shown: str) -> None:
    assert format_exit(value) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (59, "59s"), (192, "3m12s"), (7500, "2h05m"), (273600, "3d04h")],
)
def test_uptime_column(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("count", "shown"),
    [(512, "512B"), (812 * 1024, "812K"), (int(34.5 * 2**20), "34.5M"), (3 * 2**30, "3.0G")],
)
def test_memory_column(count: int, shown: str) -> None:
    assert format_bytes(count) == shown


def test_log_lines_are_prefixed_and_separators_become_messages() -> None:
    lines = ["hello", "----- started 2024-05-01 10:00:00 pid 42 -----", "----- not mine"]
    assert format_lines("api", lines, 5, from_file=True) == [
        "api   | hello",
        "api   | [devstack] started 2024-05-01 10:00:00 pid 42",
        "api   | ----- not mine",
    ]
    live = format_lines("api", lines[1:2], 3, from_file=False)
    assert live == ["api | ----- started 2024-05-01 10:00:00 pid 42 -----"]  # a service's own


# -- any bytes at all (issue 11 §2: malformed requests printed tracebacks) -----------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_requests = st.fixed_dictionaries(
    {"v": st.just(1)},
    optional={
        "op": st.sampled_from(sorted(control.OPS)) | st.text(max_size=8),
        "services": _json_values,
        "tail": _json_values,
    },
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(line=st.binary(max_size=300) | _requests.map(lambda r: json.dumps(r).encode()))
def test_any_line_is_a_request_or_a_protocol_error(line: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_request(decode(line))
