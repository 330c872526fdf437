"""The command line: which command the arguments name, and that help still lists all."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios

import pytest

from devstack import cli
from tests.support import DEVSTACK, TIMEOUT, clean_env


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["up", "jobs"], "up"),
        (["-f", "other.yaml", "env", "api"], "env"),
        (["--file", "up", "ps"], "ps"),  # "up" is the file's name here
        (["--file=x.yaml", "logs", "-f"], "logs"),
        (["--version"], None),
        ([], None),
        (["upp"], None),  # a typo: every command is built, so argparse can suggest
    ],
)
def test_the_named_command(argv: list[str], named: str | None) -> None:
    assert cli._named_command(argv) == named


def test_only_the_named_command_is_configured_and_help_lists_all(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = cli.build_parser(["-f", "x.yaml", "ps", "--json"]).parse_args(
        ["-f", "x.yaml", "ps", "--json"]
    )
    assert (args.command, args.json, args.config_file) == ("ps", True, "x.yaml")
    with pytest.raises(SystemExit):
        cli.build_parser(["--help"]).parse_args(["--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in cli.COMMANDS)


def test_an_unknown_command_is_a_usage_error_listing_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["upp"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'upp'" in capsys.readouterr().err


def test_a_plain_up_is_what_the_parser_makes_of_it() -> None:
    """A plain `devstack up` skips the parser (issue 16): the same arguments all the same."""
    parsed = cli.build_parser(["up"]).parse_args(["up"])
    assert vars(cli.plain_up()) == vars(parsed)


@pytest.mark.parametrize("columns", [50, 120])
def test_help_wraps_to_columns(
    columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The help formatter's width is told without shutil (issue 16), as argparse tells it:
    the help text wraps within it (usage lines may hold a longer unbreakable option)."""
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit):
        cli.build_parser(["up"]).parse_args(["up", "--help"])
    text = capsys.readouterr().out
    described = text.split("\n\n", 1)[1].splitlines()  # below the usage lines
    assert max(map(len, described)) <= columns - 2
    assert (max(map(len, described)) > 50) == (columns > 50)  # wider where there is room


def test_help_wraps_to_the_terminal() -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 50, 0, 0))
    env = {k: v for k, v in clean_env().items() if k not in ("COLUMNS", "LINES")}
    try:
        help_run = subprocess.run(
            [DEVSTACK, "up", "--help"], stdout=follower, env=env, timeout=TIMEOUT, check=True
        )
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed, all read
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
    assert help_run.returncode == 0
    text = output.decode().replace("\r\n", "\n")
    described = text.split("\n\n", 1)[1].splitlines()  # below the usage lines
    assert "--file PATH" in text and max(map(len, described)) <= 48
