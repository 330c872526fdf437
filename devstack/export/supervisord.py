"""`devstack export supervisord`: program sections through honcho's supervisord exporter.

honcho's exporter writes one `[program:x]` per process and a `[group:APP]`;
devstack's template adds the restart policy (autorestart, startretries), the stop
signal and timeout for the whole process group, each service's own directory, and
a start order from the dependencies (priority). The resolved env lives in a 0600
file per service that the command sources, never in the .conf (supervisorctl shows
a program's environment to anyone with access to the socket).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from devstack.core.graph import start_order
from devstack.export.honchoexport import render
from devstack.export.stack import PRIVATE, Export, ExportedService, File, Stack

# The signals supervisord's `stopsignal` accepts.
STOP_SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2")


@dataclass(frozen=True)
class Program:
    """What the template reads; `name`, `cmd` and `env` are what honcho's render uses."""

    name: str
    cmd: str
    env: dict[str, str]
    directory: str
    autostart: str
    autorestart: str
    startretries: int | None
    priority: int
    stopsignal: str
    stopwaitsecs: int


def export_supervisord(stack: Stack) -> Export:
    notes: list[str] = []
    edges = {service.name: [d.name for d in service.depends_on] for service in stack.services}
    order = start_order(edges, edges)
    programs = [
        _program(stack, service, 100 + 10 * order.index(service.name), notes)
        for service in stack.services
    ]
    context = {"app": stack.app, "output_dir": str(stack.output_dir)}
    files = render("supervisord", programs, context)
    env_files = [
        File(env_file_name(stack, service), environment_file(service), PRIVATE)
        for service in stack.services
    ]
    return Export((*files, *env_files), tuple(notes))


def env_file_name(stack: Stack, service: ExportedService) -> str:
    return f"{stack.app}-{service.name}.env"


def environment_file(service: ExportedService) -> str:
    """The service's resolved env as POSIX sh assignments, for `set -a; . FILE`."""
    values = {**service.env, **service.secrets}
    return "".join(f"{name}={shlex.quote(values[name])}\n" for name in sorted(values))


def _program(stack: Stack, service: ExportedService, priority: int, notes: list[str]) -> Program:
    env_file = shlex.quote(str(stack.output_dir / env_file_name(stack, service)))
    script = f"set -a && . {env_file} && set +a && exec {shlex.join(service.argv)}"
    signal = service.stop_signal.removeprefix("SIG")
    if signal not in STOP_SIGNALS:
        notes.append(f"{service.name}: stop_signal {service.stop_signal} becomes SIGTERM")
        signal = "TERM"
    for dep in service.depends_on:
        notes.append(
            f"{service.name}: depends_on {dep.name} ({dep.condition}) is only a start order: "
            "supervisord does not wait"
        )
    if service.ready is not None:
        notes.append(f"{service.name}: ready: is dropped: supervisord has no readiness")
    if service.max_restarts is not None:
        notes.append(
            f"{service.name}: max_restarts becomes startretries, "
            "which counts only restarts of a process that keeps exiting"
        )
    _note_dropped(service, notes)
    return Program(
        name=service.name,
        cmd=shlex.join(("/bin/sh", "-c", script)),
        env={},
        directory=str(stack.root / service.workdir).removesuffix("/."),
        autostart="true" if service.autostart else "false",
        autorestart={"no": "false", "on-failure": "unexpected", "always": "true"}[service.restart],
        startretries=service.max_restarts,
        priority=priority,
        stopsignal=signal,
        stopwaitsecs=math.ceil(service.stop_timeout),
    )


def _note_dropped(service: ExportedService, notes: list[str]) -> None:
    if service.watch is not None:
        notes.append(
            f"{service.name}: watch: is dropped: supervisord has no restart on file change"
        )
    if service.restart_dependents:
        notes.append(f"{service.name}: restart_dependents: is dropped")
    if service.tty:
        notes.append(f"{service.name}: tty: is dropped: supervisord gives programs pipes")
