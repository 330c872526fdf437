"""`devstack logs [SERVICE...] [-n N] [-f]`: service logs, prefixed like `up` shows them.

The last lines come from `.devstack/logs/<service>.log`, so they are there after the
stack has stopped too; `-f` then follows the live output through the running `up`
(which sends the tail and subscribes in one step, so no line is lost in between).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="SERVICE", help="services (default: all)")
    parser.add_argument(
        "-n", "--lines", type=_count, default=100, metavar="N", help="last N lines of each (100)"
    )
    # `-f` means follow here, as in tail and docker (the CLI leaves it free: --file only).
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new output")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("N must be 0 or more")
    return value


def run(args: argparse.Namespace) -> int:
    from devstack.commands import project_from_args, require_service

    project = project_from_args(args)
    named = [require_service(project, name) for name in args.names]
    names = list(dict.fromkeys(named)) or list(project.services)
    width = max(len(name) for name in names)
    if args.follow:
        return _follow(project.root, list(dict.fromkeys(named)), args.lines, width)
    return _show_files(project.root, names, args.lines, width)


def _show_files(root: Path, names: Sequence[str], count: int, width: int) -> int:
    from devstack.core import logfiles
    from devstack.runtime.control import tail_lines

    log_dir = logfiles.log_dir(root)
    found = False
    for name in names:
        path = logfiles.log_file(log_dir, name)
        found |= path.exists()
        _print(format_lines(name, tail_lines(path, count), width, from_file=True))
    if not found:
        print(f"no logs in {log_dir} yet: `devstack up` writes them", flush=True)
        return 1
    return 0


def _follow(root: Path, names: Sequence[str], count: int, width: int) -> int:
    from devstack.core.errors import DevstackError
    from devstack.runtime import control

    try:
        stream = control.open_stream(root, "logs-follow", services=list(names), tail=count)
        next(stream)  # the server's yes, before anything is printed
    except DevstackError as error:
        if error.problems[0].code != "not-running":
            raise
        _show_files(root, names or _logged(root), count, width)
        raise
    for record in stream:
        if "skipped" in record:
            _print([_skipped_message(record["skipped"], root)])
            continue
        name = record["name"]
        width = max(width, len(name))  # a service added to devstack.yaml meanwhile
        _print(format_lines(name, record["lines"], width, from_file=record["from"] == "file"))
    import sys

    print(f"devstack up in {root} has ended", file=sys.stderr)
    return 0


def _skipped_message(count: object, root: Path) -> str:
    """Where lines are missing because this terminal read slower than the services wrote."""
    from devstack.core import logfiles

    log_dir = logfiles.log_dir(root)
    return f"[devstack] {count} lines skipped: this `logs -f` fell behind (all are in {log_dir})"


def _logged(root: Path) -> list[str]:
    from devstack.core import logfiles

    return logfiles.logged_services(logfiles.log_dir(root))


def format_lines(name: str, lines: Iterable[str], width: int, *, from_file: bool) -> list[str]:
    """`api   | line`; a log file's start separator as devstack's own message."""
    from devstack.runtime.control import LOG_SEPARATOR_PREFIX, is_separator

    shown = []
    for line in lines:
        if from_file and is_separator(line):
            line = "[devstack] " + line.removeprefix(LOG_SEPARATOR_PREFIX).removesuffix(" -----")
        shown.append(f"{name:<{width}} | {line}")
    return shown


def _print(lines: list[str]) -> None:
    import sys

    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
