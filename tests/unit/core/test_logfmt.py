"""Log formatting: colour choice, service colours, framing bytes into lines, prefixes."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.core.logfmt import (
    PALETTE,
    LineStyle,
    assign_colours,
    clock_column,
    displayable,
    should_colour,
    split_lines,
    start_separator,
    strip_ansi,
)

NOON = time.mktime((2026, 11, 22, 12, 34, 56, 0, 0, -1)) + 0.7895


@pytest.mark.parametrize(
    ("isatty", "environ", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # set but empty: ignored, as no-color.org says
        (False, {"FORCE_COLOR": "1"}, True),
        (False, {"FORCE_COLOR": "0"}, False),
        (False, {"FORCE_COLOR": ""}, False),
        (False, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
        (True, {"TERM": "dumb"}, False),
        (False, {"TERM": "dumb", "FORCE_COLOR": "3"}, True),
    ],
)
def test_should_colour(isatty: bool, environ: dict[str, str], expected: bool) -> None:
    assert should_colour(isatty, environ) is expected


def test_colours_are_distinct_stable_and_kept_for_known_names() -> None:
    names = [f"service{i}" for i in range(len(PALETTE))]
    colours = assign_colours(names)
    assert sorted(colours.values()) == list(range(len(PALETTE)))
    assert assign_colours(names) == colours  # same every run
    assert assign_colours(["extra"], colours) | colours == assign_colours(["extra"], colours)


def test_past_the_palette_neighbours_still_differ() -> None:
    names = [f"s{i}" for i in range(3 * len(PALETTE))]
    colours = assign_colours(names)
    assert all(colours[a] != colours[b] for a, b in itertools.pairwise(names))


def test_split_lines_frames_crlf_and_keeps_the_rest() -> None:
    assert split_lines(b"a\nb\r\n\nc") == ([b"a", b"b", b""], b"c")
    assert split_lines(b"no newline") == ([], b"no newline")
    assert split_lines(b"bare\rcarriage\n") == ([b"bare\rcarriage"], b"")


def test_split_lines_cuts_long_lines_into_pieces() -> None:
    assert split_lines(b"abcdefg\nxy\n", limit=3) == ([b"abc", b"def", b"g", b"xy"], b"")
    assert split_lines(b"abcdefg", limit=3) == ([b"abc", b"def"], b"g")
    assert split_lines(b"abcdef", limit=3) == ([b"abc"], b"def")  # the rest may reach limit
    assert split_lines(b"abc\r", limit=3) == ([], b"abc\r")  # the CR may start a CRLF


def test_a_cut_never_splits_a_utf8_character() -> None:
    euros = "\u20ac\u20ac".encode()  # 3 bytes each
    assert split_lines(euros, limit=4) == ([euros[:3]], euros[3:])
    assert split_lines(euros + b"\n", limit=4) == ([euros[:3], euros[3:]], b"")
    assert split_lines(b"\x80" * 6 + b"\n", limit=4) == ([b"\x80" * 4, b"\x80" * 2], b"")


def test_displayable_replaces_only_invalid_utf8() -> None:
    text = "caf\u00e9 \u20ac [bold]".encode()
    assert displayable(text) is text
    assert displayable(b"ok \xff\xfe \xc3\x28 end\n") == "ok \ufffd\ufffd \ufffd( end\n".encode()


def frame_in_chunks(data: bytes, cuts: list[int], limit: int) -> list[bytes]:
    lines: list[bytes] = []
    rest = b""
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        new, rest = split_lines(rest + data[start:end], limit)
        lines += new
    return lines + ([rest] if rest else [])


@given(
    data=st.lists(
        st.sampled_from([b"x", b"yz", b"\n", b"\r", b"\r\n", b"\xff", b"\x80", "\u20ac".encode()])
    ).map(b"".join),
    positions=st.lists(st.integers(0, 100), max_size=12),
    limit=st.integers(1, 8),
)
def test_any_split_into_chunks_gives_the_same_lines(
    data: bytes, positions: list[int], limit: int
) -> None:
    cuts = sorted({p for p in positions if p <= len(data)})
    assert frame_in_chunks(data, cuts, limit) == frame_in_chunks(data, [], limit)
    whole = frame_in_chunks(data, [], limit)
    assert all(len(line) <= limit + 1 for line in whole)  # +1: a final lone CR
    assert b"".join(whole).replace(b"\r", b"") == data.replace(b"\n", b"").replace(b"\r", b"")


def test_strip_ansi_removes_escapes_only() -> None:
    coloured = b"\x1b[1;31merror\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ [bold]ok\xff"
    assert strip_ansi(coloured) == b"error link [bold]ok\xff"
    assert strip_ansi(b"a \x1b]unterminated\nnext\n") == b"a \nnext\n"


def test_prefixes_pad_to_the_longest_name_and_pass_lines_through() -> None:
    style = LineStyle(["api", "worker"], colour=False, timestamps=False)
    lines = [b"[bold]x[/bold] :smile:", b"\xff\xfe", b""]
    assert style.lines("api", lines, NOON) == (
        "api    | [bold]x[/bold] :smile:\napi    | \ufffd\ufffd\napi    | \n".encode()
    )
    assert style.lines("worker", [b"w"], NOON) == b"worker | w\n"


def test_colour_is_on_the_prefix_only() -> None:
    style = LineStyle(["api", "worker"], colour=True, timestamps=False)
    api = style.lines("api", [b"hello"], NOON)
    worker = style.lines("worker", [b"hello"], NOON)
    assert api.endswith(b"\x1b[0m hello\n") and api.startswith(b"\x1b[")
    assert api.split(b"m", 1)[0] != worker.split(b"m", 1)[0]  # different colours
    assert strip_ansi(api) == b"api    | hello\n"


def test_timestamps_column() -> None:
    assert clock_column(NOON) == b"12:34:56.789"
    plain = LineStyle(["api"], colour=False, timestamps=True)
    assert plain.lines("api", [b"a", b"b"], NOON) == b"12:34:56.789 api | a\n12:34:56.789 api | b\n"
    coloured = LineStyle(["api"], colour=True, timestamps=True)
    assert strip_ansi(coloured.lines("api", [b"a"], NOON)) == b"12:34:56.789 api | a\n"


def test_devstack_messages_are_distinct() -> None:
    plain = LineStyle(["api", "worker"], colour=False, timestamps=False)
    assert plain.system(None, "watching for changes", "info", NOON) == (
        "devstack \u25b8 watching for changes\n".encode()
    )
    # About one service: `name ▸ text`, never mistaken for the service's `name | text`.
    assert plain.system("api", "exited 1\nsecond line", "warn", NOON) == (
        "api    \u25b8 exited 1\napi    \u25b8 second line\n".encode()
    )
    assert plain.lines("api", [b"exited 1"], NOON) == b"api    | exited 1\n"
    coloured = LineStyle(["api", "worker"], colour=True, timestamps=False)
    info = coloured.system("api", "ready", "info", NOON)
    warn = coloured.system("api", "exited 1", "warn", NOON)
    error = coloured.system(None, "failed", "error", NOON)
    assert strip_ansi(info) == "api    \u25b8 ready\n".encode()
    assert b"\x1b[33mexited 1" in warn and b"\x1b[1;31mfailed" in error
    assert b"\x1b[2mready" in info  # dim, unlike a service's own plain text
    assert info.split(b" ", 1)[0] != coloured.lines("api", [b"ready"], NOON).split(b" ", 1)[0]


def test_start_separator() -> None:
    assert start_separator(123, NOON) == b"----- started 2026-11-22 12:34:56 pid 123 -----\n"
