"""`devstack run SERVICE -- CMD ...`: a one-off command with the service's cwd and env."""

from __future__ import annotations

import argparse

from devstack.commands import add_env_overrides


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "devstack run SERVICE [--env NAME=value] [-- CMD ...]"
    parser.add_argument("service", metavar="SERVICE")
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="CMD",
        help="the command to run (default: the service's own cmd)",
    )
    add_env_overrides(parser)


def run(args: argparse.Namespace) -> int:
    import os
    import shutil

    from devstack.commands import fail_on_env_errors, require_service, resolved
    from devstack.core.errors import EXIT_FAILURE, DevstackError, Problem

    project, env = resolved(args)
    args.service = require_service(project, args.service)
    fail_on_env_errors(env)
    service = project.services[args.service]
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    argv = argv or list(service.argv)
    # The layers' values, without devstack's own (envresolve.as_spawned): this command is
    # not one of `up`'s processes, and a run's markers would make the next `up` stop it.
    values = env.services[args.service].values
    if not service.cwd.is_dir():
        raise DevstackError([Problem(f"cwd {service.cwd} does not exist", service.location)])
    program = argv[0]
    if "/" not in program:
        program = shutil.which(program, path=values.get("PATH", "")) or ""
    if not program:
        raise DevstackError(
            [Problem(f"command '{argv[0]}' not found on {args.service}'s PATH")], EXIT_FAILURE
        )
    os.chdir(service.cwd)
    # exec: the command's exit status and signals are devstack's own, with nothing between.
    try:
        os.execve(program, argv, values)
    except OSError as error:
        raise DevstackError([Problem(f"cannot run {argv[0]}: {error}")], EXIT_FAILURE) from None
    return 0  # not reached
