"""The command line: which command the arguments name, and that help still lists all."""

from __future__ import annotations

import pytest

from devstack import cli


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
