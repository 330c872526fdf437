"""Every check of a project at once: a list of problems, errors before warnings.

`devstack doctor` prints them; `devstack up` stops on errors and prints warnings.
Values in messages are masked like everywhere else, so a report about a secret that
differs between two services can be pasted into a chat.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterator

from devstack.envresolve import ProjectEnv, admission
from devstack.errors import Location, Problem
from devstack.model import Project, Service, VarDecl
from devstack.scripts import service_ports
from devstack.secrets import is_secret, masked

# Words a `cmd` string may start with that are not programs to look up on PATH.
SHELL_WORDS = frozenset(
    {
        "cd", ".", "source", "exec", "export", "set", "unset", "trap", "eval", "if", "for",
        "while", "until", "case", "test", "[", "[[", "true", "false", ":", "echo", "printf",
        "read", "wait", "ulimit", "umask", "{", "(",
    }
)  # fmt: skip

PortHolder = Callable[[int], "str | None"]


def diagnose(
    project: Project,
    env: ProjectEnv,
    *,
    check_ports: bool = True,
    port_holder: PortHolder | None = None,
) -> list[Problem]:
    """All problems of `project` with its resolved `env`: errors first, then warnings."""
    problems = list(env.problems)
    for decl in project.vars.values():
        problems += _check_declared(project, env, decl)
    problems += _secrets_that_differ(project, env)
    problems += _dropped_everywhere(project, env)
    problems += _shell_overrides(project, env)
    for service in project.services.values():
        problems += _check_service(project, env, service)
    problems += _port_problems(project, check_ports, port_holder)
    problems += fd_limit_problems(len(project.services))
    return sorted(problems, key=lambda p: (p.severity != "error", p.location or Location("")))


# -- declared vars -------------------------------------------------------------------


def _check_declared(project: Project, env: ProjectEnv, decl: VarDecl) -> Iterator[Problem]:
    name = decl.name
    receivers = {s: e.values[name] for s, e in env.services.items() if name in e.values}
    listed = [s for s in project.services if admission(project, project.services[s]).listed(name)]
    expected = list(decl.same_across) if decl.same_across else listed
    if decl.required:
        missing = [s for s in expected if s not in receivers]
        if missing:
            yield Problem(
                f"{name} is required but {_names(missing)} {_do(missing)} not get it",
                decl.location,
                f"define {name} in .env (or the service's .env)",
                code="required-var",
            )
        elif not receivers:
            yield Problem(
                f"{name} is required but no service receives it",
                decl.location,
                f"define it in .env and list it in `env: [{name}]`",
                code="required-var",
            )
    if decl.pattern:
        for service, value in receivers.items():
            if not re.search(decl.pattern, value):
                shown = masked(name, value, project.vars)
                where = env.services[service].variables[name].source.label
                yield Problem(
                    f"{service}: {name} = {shown} (from {where}) does not match {decl.pattern!r}",
                    decl.location,
                    f"fix the value at {where}",
                    code="pattern",
                )
    if decl.same_across is not None:
        group = decl.same_across or tuple(receivers)
        values = {s: receivers[s] for s in group if s in receivers}
        if len(set(values.values())) > 1:
            yield _differs(project, env, name, values, decl.location, "error", "same-across")


def _differs(
    project: Project,
    env: ProjectEnv,
    name: str,
    values: dict[str, str],
    where: Location | None,
    severity: str,
    code: str,
) -> Problem:
    lines = [
        f"    {service}: {masked(name, value, project.vars)} "
        f"from {env.services[service].variables[name].source.label}"
        for service, value in values.items()
    ]
    first, second = list(values)[:2]
    return Problem(
        f"{name} differs between {_names(list(values))}:\n" + "\n".join(lines),
        where,
        f"give them the same value; compare with `devstack env --diff {first} {second}`",
        severity=severity,  # type: ignore[arg-type]
        code=code,
    )


def _secrets_that_differ(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    """Undeclared secret-looking names that several services get with different values."""
    by_name: dict[str, dict[str, str]] = defaultdict(dict)
    for service, service_env in env.services.items():
        for name, value in service_env.values.items():
            if is_secret(name, project.vars) and name not in project.vars:
                by_name[name][service] = value
    for name, values in sorted(by_name.items()):
        if len(set(values.values())) > 1:
            yield _differs(project, env, name, values, None, "warning", "secret-differs")


# -- env files and the shell -----------------------------------------------------------


def _dropped_everywhere(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    """Names an env file defines that no service receives: strict mode kept them out."""
    received = {name for service_env in env.services.values() for name in service_env.values}
    seen: set[str] = set()
    for service_env in env.services.values():
        for name, dropped in service_env.dropped.items():
            if name in received or name in seen:
                continue
            seen.add(name)
            where = next((s.location for s in dropped.sources if s.location), None)
            yield Problem(
                f"{name} is defined here but no service receives it ({dropped.reason})",
                where,
                _how_to_let_through(project, name),
                severity="warning",
                code="dropped",
            )


def _how_to_let_through(project: Project, name: str) -> str:
    if project.env:
        where = project.env[0].location
        return f"add {name} to `env` at {where} (every service), or to a service's `env`"
    return f"add `env: [{name}]` to devstack.yaml (every service), or to a service's `env`"


def _shell_overrides(project: Project, env: ProjectEnv) -> Iterator[Problem]:
    overridden: dict[tuple[str, str], list[str]] = defaultdict(list)
    for service, service_env in env.services.items():
        for name, variable in service_env.variables.items():
            if variable.source.kind != "shell":
                continue
            files = [s for s in variable.shadowed if s.kind.endswith("file")]
            if files and files[0].value != variable.value:
                overridden[(name, files[0].label)].append(service)
    for (name, label), services in sorted(overridden.items()):
        yield Problem(
            f"{name} from your shell overrides {label} for {_names(services)}",
            None,
            f"unset {name} in this shell if the file's value is the one you want",
            severity="warning",
            code="shell-override",
        )


# -- services ------------------------------------------------------------------------


def _check_service(project: Project, env: ProjectEnv, service: Service) -> Iterator[Problem]:
    if not service.cwd.is_dir():
        yield Problem(
            f"{service.name}: cwd {project.display_path(service.cwd)} does not exist",
            service.location,
            "create the directory or fix `cwd`",
            code="missing-cwd",
        )
        return
    program = _program(service.cmd)
    if program is None:
        return
    # The shell it was resolved from, passed in: the core never reads os.environ.
    path = env.services[service.name].values.get("PATH", env.shell.get("PATH", ""))
    if "/" in program:
        candidate = service.cwd / program
        found = candidate.is_file() and os.access(candidate, os.X_OK)
    else:
        found = shutil.which(program, path=path) is not None
    if not found:
        yield Problem(
            f"{service.name}: command '{program}' not found",
            service.location,
            "install it, or fix `cmd` (PATH is the service's own PATH)",
            code="command-not-found",
        )


def _program(cmd: str | tuple[str, ...]) -> str | None:
    """The program a command runs first, when it can be told without running a shell."""
    if isinstance(cmd, tuple):
        return cmd[0]
    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words.pop(0)  # VAR=value cmd
    if words and words[0] == "exec":
        words.pop(0)
    if not words or words[0] in SHELL_WORDS or any(c in words[0] for c in "$`;&|<>(){}"):
        return None
    return words[0]


# -- ports ---------------------------------------------------------------------------


def _port_problems(
    project: Project, check_ports: bool, port_holder: PortHolder | None
) -> Iterator[Problem]:
    owners: dict[int, list[Service]] = defaultdict(list)
    for service in project.services.values():
        for port in service_ports(service.port, service.cmd):  # `-p 3000` too (issue 12 item 6)
            owners[port].append(service)
    for port, services in owners.items():
        if len(services) > 1:
            yield Problem(
                f"port {port} is given to {_names([s.name for s in services])}",
                services[1].location,
                "give each service its own port (in `port:` or in its cmd)",
                code="port-duplicate",
            )
    if not check_ports or not owners:
        return
    if port_holder is None:
        from devstack.runtime.ports import port_holder as default_holder

        port_holder = default_holder
    for port, services in owners.items():
        holder = port_holder(port)
        if holder:
            yield Problem(
                f"{services[0].name}: port {port} is in use by {holder}",
                services[0].location,
                "stop that process, or change the service's port (`port:` or its cmd)",
                code="port-in-use",
            )


# -- the open-file limit (issue 11 §2) --------------------------------------------------

# The soft limit `up` raises itself to, where the hard limit allows: each service
# takes a few descriptors, each control connection one. macOS's default soft limit
# is 256; its kernel refuses more than OPEN_MAX (10240) per process.
FD_LIMIT = 10_240
FDS_PER_SERVICE = 6  # in devstack: its stdout and stderr pipes, a pidfd, its log, spare
FDS_BASE = 64  # devstack's own: the control socket and clients, the watcher, the terminal


def fd_limit_problems(services: int, hard_limit: int | None = None) -> list[Problem]:
    """A warning when the open-file limit `up` can raise itself to (the hard limit)
    is too low for this many services: some would fail to start with EMFILE."""
    if hard_limit is None:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard_limit = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    needed = FDS_BASE + FDS_PER_SERVICE * services
    if hard_limit >= needed:
        return []
    return [
        Problem(
            f"the open-file limit is {hard_limit}, too low for {services} services"
            f" (devstack up needs about {needed})",
            None,
            f"raise it before devstack up: `ulimit -n {max(needed * 2, 1024)}`"
            " (or the hard limit in /etc/security/limits.conf, launchctl limit on macOS)",
            severity="warning",
            code="fd-limit",
        )
    ]


# -- the platform (issue 15) -----------------------------------------------------------


def platform_note(system: str, caveat: str) -> str | None:
    """What doctor tells a user once (one note, not a problem of the stack) where a
    guarantee of devstack is weaker than on Linux: macOS, or DEVSTACK_PORTABLE=1."""
    if not caveat:  # Linux: nothing weaker
        return None
    where = "macOS" if system == "darwin" else "this platform"
    if system.startswith("linux"):
        where = "DEVSTACK_PORTABLE=1 (macOS's code paths)"
    return (
        f"note: on {where}, {caveat}\n"
        "  hint: run such a daemon in the foreground (most have a flag for it), or keep"
        " DEVSTACK_RUN_ID in its environment; README: Platforms"
    )


def _names(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _do(names: list[str]) -> str:
    return "do" if len(names) > 1 else "does"
