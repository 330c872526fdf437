"""`devstack doctor`: every problem of the stack at once, errors then warnings."""

from __future__ import annotations

import argparse

from devstack.commands import add_env_overrides


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--no-ports", action="store_true", help="skip the ports-in-use check")
    add_env_overrides(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from devstack.commands import resolved
    from devstack.doctor import diagnose
    from devstack.errors import EXIT_FAILURE, DevstackError

    try:
        project, env = resolved(args)
    except DevstackError as error:
        if not args.json:
            raise
        print(json.dumps({"problems": [p.as_dict() for p in error.problems]}, indent=2))
        return error.exit_status
    problems = diagnose(project, env, check_ports=not args.no_ports)
    errors = sum(problem.severity == "error" for problem in problems)
    if args.json:
        print(json.dumps({"problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        for problem in problems:
            print(problem.render())
        print(_summary(errors, len(problems) - errors, len(project.services)))
    return EXIT_FAILURE if errors else 0


def _summary(errors: int, warnings: int, services: int) -> str:
    if not errors and not warnings:
        return f"no problems found in {services} service{'s' if services != 1 else ''}"
    plural = lambda n, word: f"{n} {word}{'s' if n != 1 else ''}"  # noqa: E731
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
