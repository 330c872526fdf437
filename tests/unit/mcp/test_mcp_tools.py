"""The pure parts of `devstack mcp`'s answers: log cursors across rotation, the size
bounds, and the redaction of secret values from free text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devstack.mcp import tools as mcp_tools
from devstack.mcp.tools import MAX_ANSWER, Redactor, ToolFailure, finish, read_log


def texts(chunk: mcp_tools.LogChunk) -> list[str]:
    return [text for text, _ in chunk.lines]


def test_a_cursor_gives_only_the_lines_written_after_it(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_bytes(b"one\ntwo\n")
    first = read_log(log, "")
    assert texts(first) == ["one", "two"]
    with log.open("ab") as file:
        file.write(b"three\nfour, half")  # a line still being written
    second = read_log(log, first.end_cursor)
    assert texts(second) == ["three"] and not second.gap
    with log.open("ab") as file:
        file.write(b" done\n")
    third = read_log(log, second.end_cursor)
    assert texts(third) == ["four, half done"]
    assert read_log(log, third.end_cursor).lines == []


def test_a_cursor_into_the_rotated_file_reads_its_rest_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_bytes(b"old 1\n")
    cursor = read_log(log, "").end_cursor
    with log.open("ab") as file:
        file.write(b"old 2\n")
    os.replace(log, tmp_path / "api.log.1")  # what output.py does past 5 MB
    log.write_bytes(b"new 1\n")
    chunk = read_log(log, cursor)
    assert texts(chunk) == ["old 2", "new 1"] and not chunk.gap
    assert texts(read_log(log, chunk.end_cursor)) == []


def test_a_cursor_older_than_both_files_says_lines_were_missed(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_bytes(b"gone\n")
    cursor = read_log(log, "").end_cursor
    os.replace(log, tmp_path / "api.log.1")
    os.replace(tmp_path / "api.log.1", tmp_path / "older")  # rotated twice
    log.write_bytes(b"latest\n")
    chunk = read_log(log, cursor)
    assert texts(chunk) == ["latest"] and chunk.gap


def test_a_log_that_did_not_exist_yet_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    empty = read_log(log, "")
    assert empty.lines == [] and empty.end_cursor == "0:0"
    log.write_bytes(b"first\n")
    chunk = read_log(log, empty.end_cursor)
    assert texts(chunk) == ["first"] and not chunk.gap


def test_a_big_log_is_read_a_bounded_piece_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_tools, "LOG_READ_LIMIT", 20)
    log = tmp_path / "api.log"
    log.write_bytes(b"".join(f"line {n}\n".encode() for n in range(10)))  # 7 bytes each
    tail = read_log(log, "")
    assert texts(tail) == ["line 8", "line 9"]  # the first, partial line skipped
    chunk = read_log(log, f"{log.stat().st_ino}:0")
    assert texts(chunk) == ["line 0", "line 1"] and chunk.more


@pytest.mark.parametrize("cursor", ["x", "1", "1:2:3", "a:b"])
def test_a_cursor_not_from_logs_is_refused_with_a_hint(tmp_path: Path, cursor: str) -> None:
    with pytest.raises(ToolFailure, match="is not a cursor"):
        read_log(tmp_path / "api.log", cursor)


def test_every_answer_fits_and_says_where_it_was_cut() -> None:
    huge = {"lines": [f"line {n} " + "x" * 300 for n in range(2000)], "note": "y" * 50_000}
    answer = finish(huge, Redactor(None))
    assert len(json.dumps(answer)) <= MAX_ANSWER
    assert answer["lines"][-1].startswith("… [truncated: ")
    assert answer["note"].endswith("more characters]")
    small = {"services": [{"name": "api", "pid": 12}], "ok": True}
    assert finish(small, Redactor(None)) == small


def test_secret_values_and_url_passwords_leave_every_string_and_key() -> None:
    redactor = Redactor.of(["tok_abcdef", "tok_abcdef_longer", "short"])
    answer = finish(
        {
            "lines": ["key tok_abcdef_longer and tok_abcdef", "postgres://u:pw12@h/db"],
            "tok_abcdef": {"nested": ["x tok_abcdef"]},
            "kept": "short stays: too short to search for",
        },
        redactor,
    )
    text = json.dumps(answer, ensure_ascii=False)
    assert "tok_abcdef" not in text and "pw12" not in text
    assert answer["lines"] == ["key •••• and ••••", "postgres://u:••••@h/db"]
    assert answer["kept"].startswith("short stays")


def test_a_restart_request_may_say_which_client_asks() -> None:
    from devstack.runtime.control import ProtocolError, parse_request

    asked = parse_request({"op": "restart", "services": ["api"], "by": "devstack mcp"})
    assert asked.by == "devstack mcp"
    assert parse_request({"op": "restart", "services": ["api"]}).by == ""
    for by in (3, None, "x" * 41):
        with pytest.raises(ProtocolError, match="'by' must be"):
            parse_request({"op": "restart", "services": ["api"], "by": by})
