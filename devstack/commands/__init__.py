"""One module per CLI command; shared helpers for finding the project and its env."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.core.model import Project

if TYPE_CHECKING:
    from devstack.core.envmodel import ProjectEnv


def project_from_args(args: argparse.Namespace) -> Project:
    """The project named by -f, or found by walking up from the current directory."""
    from devstack.core.config import find_config, load_project

    path = Path(args.config_file) if args.config_file else find_config(Path.cwd())
    _refuse_special_file(path)
    return load_project(path)


def _refuse_special_file(path: Path) -> None:
    """`-f` naming a FIFO, a device or a socket: reading it would block for ever
    (issue 11 §2), so it is refused. A missing path is load_project's to report."""
    import stat

    from devstack.core.errors import DevstackError

    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise DevstackError.single(
            f"{path} is {kind}; devstack reads its configuration from a file",
            hint="pass -f path/to/devstack.yaml",
            code="no-config",
        )


def add_env_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env",
        dest="env_overrides",
        action="append",
        default=[],
        metavar="NAME=value",
        help="set a variable for every service, above env files and the shell (repeatable)",
    )


def env_overrides(items: list[str]) -> dict[str, str]:
    """`--env NAME=value` items as a mapping; every malformed item is reported at once."""
    from devstack.core.envfile import VALID_NAME
    from devstack.core.errors import DevstackError, Problem

    overrides: dict[str, str] = {}
    problems = []
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not VALID_NAME.match(name):
            # The value is not shown: it may be a secret (issue 11 §4).
            shown = f"{name}=..." if equals else "an item without '='"
            hint = "for example: --env DEBUG=1"
            if equals and VALID_NAME.match(name.strip()):
                hint = f"no spaces around '=': --env {name.strip()}=..."
            problems.append(Problem(f"--env {shown} is not NAME=value", hint=hint))
        else:
            overrides[name] = value
    if problems:
        raise DevstackError(problems)
    return overrides


def resolved(args: argparse.Namespace) -> tuple[Project, ProjectEnv]:
    """The project and every service's environment, as `up` would give it."""
    import os

    from devstack.core.envresolve import resolve_project

    project = project_from_args(args)
    overrides = env_overrides(getattr(args, "env_overrides", []))
    return project, resolve_project(project, os.environ, overrides)


def require_service(project: Project, name: str) -> str:
    """The service `name` means: a service name, or a package name (`@v1/jobs`)."""
    from devstack.core.packages import service_names

    return service_names(project, [name])[0]


def fail_on_env_errors(env: ProjectEnv) -> None:
    """Env files that do not parse or undefined `${NAME}`s: nothing can be trusted."""
    from devstack.core.errors import EXIT_USAGE, DevstackError

    errors = [problem for problem in env.problems if problem.severity == "error"]
    if errors:
        raise DevstackError(errors, EXIT_USAGE)
