"""`devstack up`'s options, and its checks: what the child that checks a run does.

`devstack up` itself (runtime/stackrun.py) never imports this module: a child process
(runtime/checker.py) parses the command line here, loads devstack.yaml, chooses the
services, resolves their environments and runs the doctor's checks, prints what is
wrong, and hands the checked run over; the long-lived `up` then claims the repo and
runs it (issue 16: the config code stays out of its memory).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from devstack.commands import add_env_overrides

if TYPE_CHECKING:
    from devstack.core.envmodel import ProjectEnv
    from devstack.core.model import Project
    from devstack.runtime.checker import UpOptions


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="services to start, with everything they depend on (default: all with autostart)",
    )
    parser.add_argument(
        "--no-deps", action="store_true", help="start exactly NAMES, not what they depend on"
    )
    parser.add_argument(
        "--except",
        dest="excluded",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME",
        help="leave these services out, even if something depends on them",
    )
    parser.add_argument(
        "--filter",
        dest="filters",
        action="append",
        default=[],
        metavar="FILTER",
        help="turbo's forms: NAME or @scope/pkg (globs too), pkg... (with the packages it "
        "depends on), ...pkg (with its dependents), ./apps/* (by folder), !pkg (leave out)",
    )
    parser.add_argument(
        "--abort-on-exit",
        action="store_true",
        help="stop everything as soon as any service exits",
    )
    parser.add_argument("--timestamps", action="store_true", help="add a time column to logs")
    parser.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="run in the background: wait until the services are up, print a summary, return",
    )
    # The background `up` that `-d` starts: where it says that the services settled.
    parser.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--ui", action="store_true", help="show the stack in devstack ui; quit it to stop"
    )
    add_env_overrides(parser)


def plain_defaults() -> dict[str, object]:
    """What `configure`'s options are when none is given (a plain `devstack up` is not
    parsed: devstack.cli.plain_up): UpOptions' defaults, with argparse's lists for its
    tuples. tests/unit/test_cli.py holds them equal to the parser's."""
    from dataclasses import asdict

    from devstack.runtime.checker import UpOptions

    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in asdict(UpOptions()).items()
    }


def run(args: argparse.Namespace) -> int:
    """In the child that checks a run (runtime/checker.py): load the config, choose the
    services, resolve their environments and check them as `up` always did, problems
    and warnings printed here; then hand the run over to the waiting `up` on
    `args.handover`, and keep the plan the next plain `up` starts from."""
    import os

    from devstack.commands import env_overrides, project_from_args
    from devstack.core.doctor import FD_LIMIT
    from devstack.core.envresolve import resolve_project
    from devstack.core.errors import DevstackError
    from devstack.runtime.checker import Checked, NotChecked, hand_over

    handover: int = args.handover
    project = project_from_args(args)
    names = _selection(project, args)
    overrides = env_overrides(args.env_overrides)
    # A plain copy: os.environ decodes every key and value again for each service.
    env = resolve_project(project, dict(os.environ), overrides)
    try:
        warnings = _check(project, env, names)
    except DevstackError as error:
        # `up` says what it stopped of what it started meanwhile (the kept plan's).
        hand_over(handover, NotChecked(error.exit_status, checks_failed=True))
        raise
    options = _options(args)
    hand_over(handover, Checked(project, env, tuple(names), overrides, options, warnings, FD_LIMIT))
    # `up` goes on at once; this process keeps the plan meanwhile
    if args.command_line == ["up"]:
        _keep_plan(project, env, names)
    return 0


def _options(args: argparse.Namespace) -> UpOptions:
    from devstack.runtime.checker import UpOptions

    return UpOptions(
        names=tuple(args.names),
        no_deps=args.no_deps,
        excluded=tuple(args.excluded),
        filters=tuple(args.filters),
        abort_on_exit=args.abort_on_exit,
        timestamps=args.timestamps,
        detach=args.detach,
        ready_fd=args.ready_fd,
        ui=args.ui,
        env_overrides=tuple(args.env_overrides),
    )


def _keep_plan(project: Project, env: ProjectEnv, names: list[str]) -> None:
    """For the next plain `devstack up`; rewritten each time, so a plan that differs
    from what was resolved (and adopted) now is not used twice."""
    import os
    import sys

    from devstack.core.logfmt import should_colour
    from devstack.runtime import adopt

    adopt.keep_plan(project, env, names, should_colour(sys.stdout.isatty(), os.environ))


def _selection(project: Project, args: argparse.Namespace) -> list[str]:
    from devstack.core.graph import select
    from devstack.core.packages import apply_filters, service_names

    edges = {name: service.dependency_names for name, service in project.services.items()}
    autostart = {name: service.autostart for name, service in project.services.items()}
    # Package names (`@v1/jobs`) and --filter become service names first (issue 12 item 7).
    filtered = apply_filters(project, args.filters)
    names = [*service_names(project, args.names), *filtered.requested]
    excluded = [*service_names(project, args.excluded), *filtered.excluded]
    return select(edges, names, autostart=autostart, no_deps=args.no_deps, excluded=excluded)


def _check(project: Project, env: ProjectEnv, names: list[str]) -> tuple[str, ...]:
    """Env problems and doctor errors stop `up`; doctor warnings are printed (and
    returned, so that a reload does not say them again)."""
    import sys

    from devstack.core.errors import EXIT_FAILURE, EXIT_USAGE, DevstackError
    from devstack.core.preflight import check_run

    verdict = check_run(project, env, names)
    if verdict.env_errors:
        raise DevstackError(list(verdict.env_errors), EXIT_USAGE)
    if verdict.errors:
        raise DevstackError(list(verdict.errors), EXIT_FAILURE)
    shown = tuple(problem.render() for problem in verdict.warnings)
    for text in shown:
        print(text, file=sys.stderr)
    return shown
