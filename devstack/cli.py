"""Command-line entry point: parse arguments, dispatch, turn errors into messages.

Each command lives in `devstack/commands/<name>.py` with `configure(parser)` and
`run(args) -> int`; those modules import only argparse at the top, so `--help`
and `--version` stay fast and a command pays only for what it uses.
"""

from __future__ import annotations

import sys

from devstack import __version__

TYPE_CHECKING = False  # typing's costs ~3 ms before the fast start's first spawn (issue 16)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from types import ModuleType

    from devstack.runtime.firstwave import Early

# argparse, the command modules and errors are imported inside the functions: a plain
# `devstack up` spawns its first services before them (devstack.runtime.firstwave, issue 16).

# name -> one-line help; the module is devstack.commands.<name with - as _>
COMMANDS: dict[str, str] = {
    "up": "start the stack (or NAMES and what they depend on) with prefixed logs",
    "env": "show a service's environment, one variable's story, or diff two services",
    "doctor": "check config, env files, declared vars, commands, cwds and ports",
    "config": "print the fully resolved plan per service",
    "run": "run a one-off command with a service's cwd and environment",
    "schema": "print the JSON Schema of devstack.yaml",
    "init": "write a devstack.yaml here, converted from the Procfile if there is one",
    "ps": "list the services of the running stack",
    "logs": "show (and follow) service logs",
    "start": "start services in the running stack",
    "stop": "stop services in the running stack",
    "restart": "restart services in the running stack",
    "mcp": "serve this repo's stack to coding agents (MCP over stdio)",
    "down": "stop the running stack",
    "export": "write compose, kubernetes, systemd or supervisord files for the stack",
    "ui": "a full-screen view of the running stack: services, logs, env, keys",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the arguments, only the command they name is configured."""
    import argparse
    from functools import partial

    formatter = partial(argparse.HelpFormatter, width=_help_width())
    parser = argparse.ArgumentParser(
        prog="devstack",
        description="Run a whole monorepo's dev stack with one command.",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"devstack {__version__}")
    _add_file_option(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Building all twelve subparsers costs ~15 ms of every start; `devstack up` needs one.
    chosen = _named_command(argv)
    for name, help_text in COMMANDS.items():
        if chosen is not None and name != chosen:
            continue
        module = _command_module(name)
        if module is None:
            continue
        sub = commands.add_parser(
            name, help=help_text, description=help_text, formatter_class=formatter
        )
        # Also after the command (`devstack up -f x.yaml`), without hiding one given before it.
        # `logs -f` means follow, as in tail and docker; --file still works there.
        _add_file_option(sub, default=argparse.SUPPRESS, short=name != "logs")
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def _help_width() -> int:
    """What argparse's help formatter would use (the terminal's width, or $COLUMNS, or
    80; less 2), told without `shutil`: argparse imports shutil for it in every
    `add_argument`, and with it bz2 and lzma, which the long-lived `up` would keep
    (issue 16)."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (ValueError, OSError):  # stdout closed, or not a terminal
            columns = 0
    return (columns if columns > 0 else 80) - 2


def _named_command(argv: Sequence[str] | None) -> str | None:
    """The known command `argv` names, or None (no command, a typo, or only options)."""
    args = list(sys.argv[1:] if argv is None else argv)
    while args:
        arg = args.pop(0)
        if arg in ("-f", "--file"):
            if args:
                args.pop(0)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _add_file_option(parser: argparse.ArgumentParser, default: object, short: bool = True) -> None:
    parser.add_argument(
        *(["-f"] if short else []),
        "--file",
        dest="config_file",
        metavar="PATH",
        default=default,
        help="devstack.yaml to use (default: the nearest one in this or a parent directory)",
    )


def _command_module(name: str) -> ModuleType | None:
    import importlib

    try:
        return importlib.import_module(f"devstack.commands.{name.replace('-', '_')}")
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("devstack.commands"):
            return None  # a command whose module is not part of this build
        raise


def _require_working_directory(config_file: str | None) -> None:
    """A shell whose directory was deleted (or moved) gets a clear message, not a
    traceback; with an absolute -f, devstack works from that file's directory."""
    import os

    from devstack.core.errors import DevstackError

    try:
        os.getcwd()
    except FileNotFoundError:
        if config_file and os.path.isabs(config_file):
            os.chdir(os.path.dirname(config_file) or "/")
            return
        raise DevstackError.single(
            "the current directory no longer exists (deleted, or moved away)",
            hint="`cd` into the repo again, or give -f /absolute/path/to/devstack.yaml",
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    command_line = list(sys.argv[1:] if argv is None else argv)
    if _named_command(command_line) == "up":
        return _up(command_line, fast_start=argv is None)
    try:
        return _main(argv, command_line)
    except KeyboardInterrupt:  # before the command's own handling began
        return 130


def _up(command_line: list[str], *, fast_start: bool) -> int:
    """`devstack up`: a plain `up` spawns its kept plan's services first
    (runtime/firstwave.py); a child checks the run; the long-lived `up`
    (runtime/stackrun.py) waits for the checked run and runs it. It never parses its
    arguments or reads devstack.yaml itself: the child does (issue 16)."""
    early = None
    try:
        early = _first_wave() if fast_start else None
        # A first `up` waits for the checks: forked now, they start at once. After a
        # fast start, a fresh interpreter checks (runtime/checker.py: UpCheck).
        checks = fork_checks(command_line) if early is None and _alone() else None
        from devstack.runtime import stackrun

        return _reporting(lambda: stackrun.main(checks, command_line, early))
    except KeyboardInterrupt:  # before the command's own handling began
        return 130
    finally:
        if early is not None:
            early.close()  # nothing is left of what `up` did not take over


def _main(argv: Sequence[str] | None, command_line: list[str]) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    args.command_line = command_line
    return _reporting(lambda: _run(args))


def fork_checks(command_line: list[str]) -> tuple[int, int]:
    """Fork the child that checks `devstack COMMAND_LINE` (an `up`): its pid, and the
    pipe it hands the checked run over on (runtime/checker.py reads it).

    Forked, not a fresh interpreter, while no other thread runs (a fork copies only
    the calling one): its Python and what is imported already are not paid for twice
    (~100 ms of CPU less before a first `up` can spawn)."""
    import os

    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: it never returns from here
        status = 1
        try:
            os.close(read_end)
            status = _check_in_fork(command_line, write_end)
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _alone() -> bool:
    """No other thread runs in this process (a fork copies only the calling one)."""
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _check_in_fork(command_line: list[str], handover: int) -> int:
    """`check_up`'s exit status, whatever it does (argparse exits; a bug is printed)."""
    import contextlib

    status = 1
    try:
        status = check_up(command_line, handover)
    except SystemExit as stop:  # argparse: help (0), a usage error (2)
        status = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    except KeyboardInterrupt:
        status = 130
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
                stream.flush()
    return status


def checker_main(args: list[str]) -> int:
    """A fresh interpreter that checks (runtime/checker.py): `up FD ARGV...` checks
    `devstack ARGV` and hands the run over on FD; `reload` checks a reload, `rules`
    compiles the watcher's rules."""
    if args[0] in ("reload", "rules"):
        from devstack.runtime.checker import answer_main

        return answer_main(args[0])
    return check_up(args[2:], handover=int(args[1]))


def check_up(argv: list[str], handover: int) -> int:
    """In the child that checks: `devstack ARGV`, an `up`, parsed and checked, what is wrong
    printed, the run handed over on `handover` (commands/up.py)."""
    args = plain_up() if argv == ["up"] else build_parser(argv).parse_args(argv)
    args.command_line = argv
    args.handover = handover
    return _reporting(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    """The command `args` names, run from a directory that exists."""
    _require_working_directory(getattr(args, "config_file", None))
    return int(args.run(args) or 0)


def _reporting(command: Callable[[], int]) -> int:
    """`command`'s exit status; its errors said, as exit statuses too."""
    from devstack.core.errors import EXIT_FAILURE, DevstackError

    try:
        return command()
    except DevstackError as error:
        print(error.render(), file=sys.stderr)
        for note in error.notes:
            print(note, file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `devstack logs | head` closed the pipe: not an error worth a traceback.
        sys.stderr.close()
        return EXIT_FAILURE


def plain_up() -> argparse.Namespace:
    """What the parser makes of a plain `devstack up`, without building it: its help
    formatter alone imports shutil (~7 ms before a first `up` spawns, issue 16).
    tests/unit/test_cli.py proves it equal to the parser's."""
    from argparse import Namespace

    from devstack.commands import up

    return Namespace(command="up", config_file=None, run=up.run, **up.plain_defaults())


def _first_wave() -> Early | None:
    """A plain `devstack up` with a kept plan: its first services, spawned now."""
    if sys.argv[1:] != ["up"]:
        return None
    import os

    from devstack.runtime import firstwave

    return firstwave.launch(sys.argv[1:], os.environ, __version__)
