"""`devstack doctor`: every problem of the stack at once, errors then warnings."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from devstack.commands import add_env_overrides

if TYPE_CHECKING:
    from collections.abc import Callable

    from devstack.core.model import Project


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--no-ports", action="store_true", help="skip the ports-in-use check")
    add_env_overrides(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from devstack.commands import resolved
    from devstack.core.doctor import diagnose
    from devstack.core.errors import EXIT_FAILURE, DevstackError

    try:
        project, env = resolved(args)
    except DevstackError as error:
        if not args.json:
            raise
        print(json.dumps({"problems": [p.as_dict() for p in error.problems]}, indent=2))
        return error.exit_status
    problems = diagnose(
        project, env, check_ports=not args.no_ports, port_holder=_holder_outside_stack(project)
    )
    errors = sum(problem.severity == "error" for problem in problems)
    if not args.json:
        _note_platform()
    if args.json:
        print(json.dumps({"problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        for problem in problems:
            print(problem.render())
        print(_summary(errors, len(problems) - errors, len(project.services)))
    return EXIT_FAILURE if errors else 0


def _note_platform() -> None:
    import sys

    from devstack.core.doctor import platform_note
    from devstack.runtime import platform

    if note := platform_note(sys.platform, platform.current().caveat):
        print(note, file=sys.stderr)


def _holder_outside_stack(project: Project) -> Callable[[int], str | None]:
    """A port held by this repo's running `devstack up` is its service's own: no problem.
    A dead run's leftovers holding a port are one (the next `up` stops them)."""
    import functools

    from devstack.runtime.control import is_running
    from devstack.runtime.ports import port_holder
    from devstack.runtime.runstate import read_run

    run = read_run(project.state_dir) if is_running(project.root) else None
    return functools.partial(port_holder, except_run=(run or {}).get("run_id"))


def _summary(errors: int, warnings: int, services: int) -> str:
    if not errors and not warnings:
        return f"no problems found in {services} service{'s' if services != 1 else ''}"
    plural = lambda n, word: f"{n} {word}{'s' if n != 1 else ''}"  # noqa: E731
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
