"""The supervisor's side of the fast start (devstack.runtime.firstwave, issue 16): which
services the plan holds, keeping the plan, and adopting the children spawned from it.

A child is adopted only if the supervisor would spawn exactly it now (argv, cwd and
env equal to what it just resolved); any other is stopped and its service spawned
afresh, so a plan can make a start faster but never different.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from devstack import __version__
from devstack.core.scripts import service_ports
from devstack.runtime import firstwave

if TYPE_CHECKING:
    from pathlib import Path

    from devstack.core.envmodel import ProjectEnv, ServiceEnv, Source
    from devstack.core.model import Project
    from devstack.runtime.output import Output
    from devstack.runtime.process import ServiceProcess

# What `up` imports before its first spawn: nothing here imports asyncio or the
# supervisor's modules at the top (devstack.commands.up spawns the first wave first).


def first_wave(project: Project, names: Sequence[str]) -> list[str]:
    """The selected services that may start before the supervisor runs: no dependency
    to wait for, no port to check first (`port` or one in the command), no readiness
    probe, no terminal of their own."""
    return [
        name
        for name in names
        if not (service := project.services[name]).depends_on
        and not service_ports(service.port, service.cmd)  # `up` checks them before a spawn
        and service.ready is None
        and not service.tty
    ]


def planned(
    project: Project, env: ProjectEnv, names: Sequence[str], *, skip: Sequence[str] = ()
) -> list[firstwave.Planned]:
    """The first wave of `names` as `up` resolved it just now, to spawn before the
    supervisor runs (`skip`: those already spawned from the kept plan). Nothing of it
    is written anywhere: a service with a shell value or a secret is in it too."""
    return [
        firstwave.Planned(
            name,
            list(project.services[name].argv),
            str(project.services[name].cwd),
            dict(env.services[name].values),
            [],
        )
        for name in first_wave(project, names)
        if name not in skip
    ]


def keep_plan(project: Project, env: ProjectEnv, names: Sequence[str], colour: bool) -> None:
    """Write the plan the next plain `devstack up` starts from (nothing if it cannot)."""
    from devstack.core.doctor import FD_LIMIT

    key = firstwave.plan_key(
        str(project.config_path),
        [str(path) for path in env.env_files],
        os.environ,
        tty=sys.stdout.isatty(),
        version=__version__,
    )
    files = _ReadOnce()
    services: list[dict[str, object]] = []
    for name in first_wave(project, names):
        kept = _kept_env(env.services[name], os.environ)
        if kept is None:
            continue
        values, shell = kept
        found = _secrets_as_spans(project, env, name, values, key_files(key), files)
        if found is None:
            continue
        values, spans = found
        service = project.services[name]
        argv, cwd = list(service.argv), str(service.cwd)
        services.append(
            {"name": name, "argv": argv, "cwd": cwd, "env": values, "shell": shell, "spans": spans}
        )
    with contextlib.suppress(OSError):  # only the next start is slower
        firstwave.write_plan(
            str(project.state_dir),
            key,
            names=list(names),
            colour=colour,
            fd_limit=FD_LIMIT,
            services=services,
        )


def _kept_env(
    service: ServiceEnv, environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]] | None:
    """A service's env as the plan keeps it: the values from devstack.yaml and the env
    files (already on disk in the repo), and the names of those that are the shell's,
    whose values are never written (the plan keeps only a digest of the shell). None
    when a value was built from a shell variable: that service waits for the supervisor.
    """
    values: dict[str, str] = {}
    shell: list[str] = []
    for name, value in service.values.items():
        variable = service.variables.get(name)
        if environ.get(name) == value and (variable is None or variable.source.kind == "shell"):
            shell.append(name)
        elif variable is not None and _from_shell(variable.source):
            return None
        else:
            values[name] = value
    return values, shell


def key_files(key: Mapping[str, object]) -> list[str]:
    """The files a plan's key holds the digests of: devstack.yaml, then the env files."""
    files = key["files"]
    assert isinstance(files, dict)
    return list(files)


class _ReadOnce:
    """Each file's bytes, read once while one plan is written."""

    def __init__(self) -> None:
        self._data: dict[str, bytes | None] = {}

    def __call__(self, path: str) -> bytes | None:
        if path not in self._data:
            try:
                with open(path, "rb") as file:
                    self._data[path] = file.read()
            except OSError:
                self._data[path] = None
        return self._data[path]


def _secrets_as_spans(
    project: Project,
    env: ProjectEnv,
    name: str,
    values: Mapping[str, str],
    files: Sequence[str],
    read: _ReadOnce,
) -> tuple[dict[str, str], dict[str, list[object]]] | None:
    """What the plan keeps of `name`'s values: those devstack would not mask, and, for
    each it would, where its exact bytes stand in a file the plan's key holds the digest
    of (path, offset, length). Secrets stay out of every file (issue 11 §4), yet most
    real stacks give every service one (turbo's `globalEnv: ["AUTH_SECRET"]`, a `.env`
    of API keys): a place in the user's own file, read again at the next start, lets
    such a service start from the plan too. The key's digest of that file says its
    bytes are the same then, so the same slice is the same value. None when a secret
    cannot be placed so (built from others, escaped, another encoding) or the command
    line itself holds one: that service waits for the supervisor."""
    from devstack.core.secrets import mask_argv

    argv = list(project.services[name].argv)
    if mask_argv(argv) != argv:
        return None
    masking = env.services[name].masking(project.vars)  # `OWNER=ops ${API_TOKEN}` too
    plain: dict[str, str] = {}
    spans: dict[str, list[object]] = {}
    for key, value in values.items():
        if masking.masked(key, value) == value:
            plain[key] = value
            continue
        span = _place(value.encode(), files, read)
        if span is None:
            return None
        spans[key] = span
    return plain, spans


def _place(value: bytes, files: Sequence[str], read: _ReadOnce) -> list[object] | None:
    """[path, offset, length] of the first file holding `value` verbatim, if one does."""
    for path in files:
        data = read(path)
        offset = -1 if data is None or not value else data.find(value)
        if offset >= 0:
            return [path, offset, len(value)]
    return None


def _from_shell(source: Source) -> bool:
    return source.kind == "shell" or any(
        use.source is not None and _from_shell(use.source) for use in source.uses
    )


def adopting(early: firstwave.Early, run_id: str, wave: Sequence[str]) -> Any:
    """A spawn function for the Supervisor: a child of `early` when it is exactly the
    process asked for and its service is still of the first `wave`, else a new one
    (the child, if any, is stopped first)."""
    from devstack.runtime import reaper
    from devstack.runtime.process import ServiceProcess

    for child in early.children.values():
        # Known before the loop's orphan reaper runs: it never reaps a child to adopt.
        reaper.note_live(child.pid)

    async def spawn(
        *,
        name: str,
        argv: Sequence[str],
        cwd: Path | str,
        env: Mapping[str, str],
        tty: bool,
        output: Output,
    ) -> ServiceProcess:
        child = early.take(name)
        if child is not None and name in wave and not tty and child.matches(argv, str(cwd), env):
            return await ServiceProcess.adopt(name=name, child=child, run_id=run_id, output=output)
        if child is not None:
            import signal

            from devstack.runtime import reaper

            # Not what would be spawned now: gone at once (SIGKILL, then reaped).
            firstwave.end_child(child, signal.SIGKILL)
            reaper.forget_live(child.pid)
        return await ServiceProcess.spawn(
            name=name, argv=argv, cwd=cwd, env=env, tty=tty, output=output
        )

    return spawn
