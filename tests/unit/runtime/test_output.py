"""Output: services' raw bytes -> whole prefixed lines on the terminal, log files, subscribers."""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.core.logfmt import MAX_LINE
from devstack.runtime.output import Output

ESC = b"\x1b["


def plain(names: list[str], log_dir: Path | None = None, **options: object) -> Output:
    options.setdefault("stream", io.BytesIO())
    options.setdefault("color", False)
    options.setdefault("timestamps", False)
    return Output(names, log_dir=log_dir, **options)  # type: ignore[arg-type]


def shown(output: Output) -> list[bytes]:
    stream = output._terminal._stream
    assert isinstance(stream, io.BytesIO)
    return stream.getvalue().split(b"\n")[:-1]  # not splitlines: a lone CR is in a line


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted({cut for cut in cuts if 0 < cut < len(data)})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@given(
    cuts_a=st.lists(st.integers(1, 300)),
    cuts_b=st.lists(st.integers(1, 300)),
    order=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_interleaved_chunks_of_two_services_give_whole_lines(
    cuts_a: list[int], cuts_b: list[int], order: list[bool]
) -> None:
    lines_a = [f"alpha line {i} ".encode() * (i % 4) for i in range(20)]
    lines_b = [f"b{i}\r".encode() for i in range(20)]
    chunks = {
        "alpha": chunked(b"\n".join(lines_a) + b"\n", cuts_a),
        "b": chunked(b"\r\n".join(lines_b) + b"\r\n", cuts_b),
    }
    output = plain(["alpha", "b"])
    for pick_a in order + [True] * 300 + [False] * 300:
        queue = chunks["alpha" if pick_a else "b"]
        if queue:
            output.feed("alpha" if pick_a else "b", "out", queue.pop(0))
    got = shown(output)
    assert [line[len("alpha | ") :] for line in got if line.startswith(b"alpha | ")] == lines_a
    assert [line[len("alpha | ") :] for line in got if line.startswith(b"b     | ")] == lines_b
    assert len(got) == 40


def test_each_stream_keeps_its_own_unfinished_line() -> None:
    output = plain(["api"])
    output.feed("api", "out", b"to std")
    output.feed("api", "err", b"an error\n")
    output.feed("api", "out", b"out\n")
    assert shown(output) == [b"api | an error", b"api | to stdout"]


def test_one_write_per_chunk_of_lines() -> None:
    writes: list[bytes] = []

    class Recorder(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            writes.append(bytes(data))
            return len(data)

    output = plain(["api"], stream=Recorder())
    output.feed("api", "out", b"one\ntwo\nthr")
    output.feed("api", "out", b"ee\n")
    assert writes == [b"api | one\napi | two\n", b"api | three\n"]


def test_padding_follows_services_added_and_removed() -> None:
    output = plain(["api", "db"])
    output.feed("db", "out", b"1\n")
    output.add_service("scheduler")
    output.feed("db", "out", b"2\n")
    output.remove_service("scheduler")
    output.feed("db", "out", b"3\n")
    output.feed("stranger", "out", b"4\n")  # never announced: shown all the same
    assert shown(output) == [b"db  | 1", b"db        | 2", b"db  | 3", b"stranger | 4"]


def test_colour_only_when_asked_and_service_text_untouched(tmp_path: Path) -> None:
    markup = "[bold]x[/bold] :smile: \x1b[32mgreen\x1b[0m \u00e9".encode()
    for colour in (False, True):
        output = plain(["api", "worker"], color=colour)
        output.feed("api", "out", markup + b"\n")
        output.system("api", "ready")
        [line, message] = shown(output)
        assert line.endswith(b" " + markup)
        assert (ESC in line[: -len(markup)]) is colour
        assert (ESC in message) is colour


def test_timestamps_column_from_the_clock() -> None:
    output = plain(["api"], timestamps=True, clock=lambda: 0.25)
    output.feed("api", "out", b"x\n")
    output.system(None, "hello")
    [line, message] = shown(output)
    assert line.endswith(b".250 api | x") and line[2:3] == b":" and len(line) == len("x") + 19
    assert message.endswith(".250 devstack \u25b8 hello".encode())


def test_end_stream_shows_the_unfinished_line() -> None:
    output = plain(["api"])
    output.feed("api", "out", b"no newline at the end")
    assert shown(output) == []
    output.end_stream("api", "out")
    output.end_stream("api", "out")  # twice: nothing more
    assert shown(output) == [b"api | no newline at the end"]


def test_a_prompt_is_shown_after_a_short_wait_and_a_split_line_is_not() -> None:
    async def scenario() -> list[bytes]:
        output = plain(["api"])
        shown_lines: list[str] = []
        prompt_seen = asyncio.Event()

        def take(name: str, lines: list[str]) -> None:
            shown_lines.extend(lines)
            if "Password: " in lines:
                prompt_seen.set()

        output.subscribe(take)
        output.feed("api", "out", b"hal")
        loop = asyncio.get_running_loop()
        loop.call_soon(output.feed, "api", "out", b"f a line\nPassword: ")
        await asyncio.wait_for(prompt_seen.wait(), timeout=10)
        output.feed("api", "out", b"hunter2\n")
        assert shown_lines == ["half a line", "Password: ", "hunter2"]
        return shown(output)

    assert asyncio.run(scenario()) == [b"api | half a line", b"api | Password: ", b"api | hunter2"]


def test_a_1mb_line_without_newline_comes_through_in_pieces(tmp_path: Path) -> None:
    output = plain(["big"], log_dir=tmp_path)
    payload = ("\u20ac" * 350_000).encode()  # 1 MB of 3-byte characters
    for start in range(0, len(payload), 10_007):
        output.feed("big", "out", payload[start : start + 10_007])
    output.end_stream("big", "out")
    pieces = [line.removeprefix(b"big | ") for line in shown(output)]
    assert "".join(piece.decode() for piece in pieces) == payload.decode()  # no char cut
    assert all(len(piece) <= MAX_LINE for piece in pieces) and len(pieces) > 1
    output.close()
    assert (tmp_path / "big.log").read_bytes().replace(b"\n", b"") == payload


def test_invalid_utf8_is_shown_replaced_and_logged_as_it_was(tmp_path: Path) -> None:
    output = plain(["api"], log_dir=tmp_path)
    got: list[str] = []
    output.subscribe(lambda name, lines: got.extend(lines))
    output.feed("api", "out", b"bad \xff\xfe bytes \xc3")
    output.feed("api", "out", b"\x28 end\n")
    assert [line.decode() for line in shown(output)] == ["api | bad \ufffd\ufffd bytes \ufffd( end"]
    assert got == ["bad \ufffd\ufffd bytes \ufffd( end"]
    output.close()
    assert (tmp_path / "api.log").read_bytes() == b"bad \xff\xfe bytes \xc3\x28 end\n"


def test_log_files_plain_with_a_separator_per_start(tmp_path: Path) -> None:
    output = plain(["api", "db"], log_dir=tmp_path / "logs", color=True)
    output.started("api", 123)
    output.feed("api", "out", b"\x1b[1;32mlistening\x1b[0m on :8000\n")
    output.system("api", "ready")  # devstack's messages stay out of the service's log
    output.started("api", 456)
    output.feed("api", "err", b"again\n")
    output.close()
    log = (tmp_path / "logs" / "api.log").read_text().splitlines()
    assert [line.split(" pid ")[-1] for line in log if line.startswith("----- started ")] == [
        "123 -----",
        "456 -----",
    ]
    assert [line for line in log if not line.startswith("-----")] == [
        "listening on :8000",
        "again",
    ]
    assert not (tmp_path / "logs" / "db.log").exists()


def test_log_files_rotate_once_past_their_limit(tmp_path: Path) -> None:
    output = plain(["api"], log_dir=tmp_path, log_limit=100)
    lines = [f"line {i:03}".encode() for i in range(30)]  # 9 bytes + newline each
    for line in lines:
        output.feed("api", "out", line + b"\n")
    output.close()
    current = (tmp_path / "api.log").read_bytes()
    previous = (tmp_path / "api.log.1").read_bytes()
    assert len(current) <= 100 and len(previous) <= 100
    assert (previous + current).splitlines() == lines[-len((previous + current).splitlines()) :]
    assert current.splitlines()[-1] == b"line 029"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["api.log", "api.log.1"]


def test_subscribe_and_unsubscribe() -> None:
    output = plain(["api", "db"])
    got: list[tuple[str, list[str]]] = []
    unsubscribe = output.subscribe(lambda name, lines: got.append((name, lines)))

    def once(name: str, lines: list[str]) -> None:
        stop_once()  # a probe that matched leaves from inside its callback

    stop_once = output.subscribe(once)
    output.feed("api", "out", b"a\nb\n")
    output.feed("db", "err", b"\x1b[31mc\x1b[0m\n")
    output.system("api", "not a line of the service")
    unsubscribe()
    unsubscribe()
    output.feed("api", "out", b"after\n")
    assert got == [("api", ["a", "b"]), ("db", ["c"])]


def test_a_closed_terminal_does_not_stop_the_logs(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "wb") as stream:
        output = plain(["api"], log_dir=tmp_path, stream=stream)
        output.feed("api", "out", b"nobody reads this\n")
        output.system(None, "nor this")
        output.feed("api", "out", b"still logged\n")
        output.close()
    assert (tmp_path / "api.log").read_bytes() == b"nobody reads this\nstill logged\n"


def test_a_slow_non_blocking_terminal_gets_everything() -> None:
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    received = bytearray()

    def read_slowly() -> None:
        with open(read_end, "rb", buffering=0) as source:
            while chunk := source.read(1000):
                received.extend(chunk)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    lines = [b"%06d " % i + b"x" * 70 for i in range(20_000)]
    with open(write_end, "wb") as stream:
        output = plain(["api"], stream=stream)
        output.feed("api", "out", b"\n".join(lines) + b"\n")
        output.close()
    reader.join(timeout=30)
    assert bytes(received).splitlines() == [b"api | " + line for line in lines]


def test_close_shows_every_unfinished_line(tmp_path: Path) -> None:
    output = plain(["api", "db"], log_dir=tmp_path)
    output.feed("api", "out", b"api prompt> ")
    output.feed("db", "err", b"db half")
    output.close()
    assert sorted(shown(output)) == [b"api | api prompt> ", b"db  | db half"]
    assert (tmp_path / "db.log").read_bytes() == b"db half\n"


def test_a_failing_subscriber_is_dropped_and_output_goes_on() -> None:
    output = plain(["api"])
    got: list[str] = []

    def broken(name: str, lines: list[str]) -> None:
        raise RuntimeError("probe bug")

    output.subscribe(broken)
    output.subscribe(lambda name, lines: got.extend(lines))
    output.feed("api", "out", b"one\n")
    output.feed("api", "out", b"two\n")
    assert got == ["one", "two"]
    [report] = [line.decode() for line in shown(output) if b"probe bug" in line]
    assert report == "devstack \u25b8 internal error in a log subscriber, dropped: " + repr(
        RuntimeError("probe bug")
    )


def test_a_start_is_said_before_the_first_line() -> None:
    output = plain(["api", "db"])
    output.started("api", 123)
    output.feed("api", "out", b"listening\n")
    output.close()
    assert shown(output) == ["api \u25b8 started (pid 123)".encode(), b"api | listening"]


def test_a_full_disk_that_frees_up_resumes_logging_and_says_what_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    from devstack.runtime import output as output_module

    monkeypatch.setattr(output_module, "RETRY_AFTER", 0.0)  # try again at every write
    output = plain(["api"], log_dir=tmp_path)
    output.feed("api", "out", b"kept\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # The file size limit fails writes as a full disk does (EFBIG where ENOSPC).
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(b"kept\n"), hard))
    try:
        output.feed("api", "out", b"lost 1\n")
        output.feed("api", "out", b"lost 2\nlost 3\n")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    output.feed("api", "out", b"back\n")
    output.close()
    assert (tmp_path / "api.log").read_bytes() == (
        b"kept\n----- 3 lines (21 bytes) not logged: writing failed -----\nback\n"
    )
    messages = b"\n".join(shown(output))
    assert messages.count(b"cannot write") == 1
    assert b"again; 3 lines (21 bytes) were lost" in messages


def test_log_files_are_private_and_never_follow_a_symlink(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    (tmp_path / "elsewhere").write_text("not a log\n")
    (logs / "db.log").symlink_to(tmp_path / "elsewhere")
    (logs / "old.log").write_text("from an older devstack\n")
    (logs / "old.log").chmod(0o644)
    output = plain(["api", "db", "old"], log_dir=logs)
    for name in ("api", "db", "old"):
        output.feed(name, "out", b"line\n")
    output.close()
    assert (logs.stat().st_mode & 0o777) == 0o700
    assert ((logs / "api.log").stat().st_mode & 0o777) == 0o600
    assert ((logs / "old.log").stat().st_mode & 0o777) == 0o600
    assert (tmp_path / "elsewhere").read_text() == "not a log\n"
    assert b"cannot write" in b"\n".join(shown(output))
