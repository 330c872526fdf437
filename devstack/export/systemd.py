"""`devstack export systemd`: user units through honcho's systemd exporter.

honcho's exporter lays out the units (APP.target wants APP-NAME.target, which wants
APP-NAME.service); devstack's templates fill in what a Procfile cannot say:
dependencies as After=/Requires=, a one-shot that others wait on to complete as
Type=oneshot, the restart policy, `ready:` as an ExecStartPost that waits for the
probe, and the resolved env in a 0600 EnvironmentFile instead of the unit. Units are
for `systemctl --user` (default.target, no User=) and stop the whole control group,
where honcho's `KillMode=process` would leave a service's children running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from devstack.export.honchoexport import render
from devstack.export.probes import shell_check
from devstack.export.stack import PRIVATE, Export, ExportedService, File, Stack


@dataclass(frozen=True)
class Unit:
    """What the templates read; `name`, `cmd` and `env` are what honcho's render uses."""

    name: str
    cmd: str
    env: dict[str, str]
    service: str
    autostart: bool
    type: str
    directory: str
    env_file: str
    exec_start: str
    exec_start_post: str
    start_timeout: str
    requires: str
    restart: str
    start_limit: int | None
    stop_signal: str
    stop_timeout: str


def export_systemd(stack: Stack) -> Export:
    notes: list[str] = []
    units = [_unit(stack, service, notes) for service in stack.services]
    files = render("systemd", units, {"app": stack.app})
    env_files = [
        File(env_file_name(stack, service), environment_file(service), PRIVATE)
        for service in stack.services
    ]
    return Export((*files, *env_files), tuple(notes))


def unit_name(stack: Stack, name: str) -> str:
    return f"{stack.app}-{_dashes(name)}"


def env_file_name(stack: Stack, service: ExportedService) -> str:
    return f"{unit_name(stack, service.name)}.env"


def _unit(stack: Stack, service: ExportedService, notes: list[str]) -> Unit:
    oneshot = stack.waited_on(service.name, "completed")
    check = shell_check(service.ready) if service.ready is not None else None
    if service.ready is not None and check is None:
        notes.append(
            f"{service.name}: ready: {{log: {service.ready.target!r}}} is dropped: "
            "units ordered after it wait only for it to start"
        )
    restart = service.restart
    if oneshot and restart == "always":
        notes.append(f"{service.name}: restart: always becomes on-failure for a one-shot unit")
        restart = "on-failure"
    waits = [f"{unit_name(stack, dep.name)}.service" for dep in service.depends_on]
    _note_dropped(service, notes)
    return Unit(
        name=_dashes(service.name),
        cmd=" ".join(service.argv),
        env={},
        service=service.name,
        autostart=service.autostart,
        type="oneshot" if oneshot else "exec",
        directory=_specifiers(str(stack.root / service.workdir).removesuffix("/.")),
        env_file=_specifiers(str(stack.output_dir / env_file_name(stack, service))),
        exec_start=command_line(service.argv),
        exec_start_post=_wait_for(check, service) if check and not oneshot else "",
        start_timeout=_seconds(service.ready.timeout) if service.ready else "",
        requires=" ".join(waits),
        restart=restart,
        start_limit=service.max_restarts + 1 if service.max_restarts is not None else None,
        stop_signal=service.stop_signal,
        stop_timeout=_seconds(service.stop_timeout),
    )


def _wait_for(check: str, service: ExportedService) -> str:
    """Until the probe passes, the unit is `activating` and units After= it wait."""
    assert service.ready is not None
    loop = f"until {check}; do sleep {service.ready.interval:g}; done"
    return command_line(("/bin/sh", "-c", loop))


def command_line(argv: tuple[str, ...] | list[str]) -> str:
    """argv as systemd splits it back: each word double-quoted with C escapes, and `%`
    and `$` doubled, since systemd expands specifiers and $VARS in Exec lines."""
    return " ".join(_quote(word) for word in argv)


def _quote(word: str) -> str:
    escaped = (
        word.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("%", "%%")
        .replace("$", "$$")
    )
    return f'"{escaped}"'


def environment_file(service: ExportedService) -> str:
    """The service's resolved env for EnvironmentFile=, as systemd's env-file parser reads
    it (src/basic/env-file.c): single quotes keep everything, newlines too, up to the next
    quote; in double quotes a backslash escapes only \\ " $ and `. No ${VAR} expansion."""
    values = {**service.env, **service.secrets}
    lines = []
    for name in sorted(values):
        value = values[name]
        if "'" not in value:
            lines.append(f"{name}='{value}'")
        else:
            for char in ("\\", '"', "$", "`"):
                value = value.replace(char, f"\\{char}")
            lines.append(f'{name}="{value}"')
    return "".join(f"{line}\n" for line in lines)


def _specifiers(text: str) -> str:
    return text.replace("%", "%%")


def _dashes(name: str) -> str:
    from honcho.export.base import dashrepl

    dashed: str = dashrepl(name)
    return dashed


def _seconds(seconds: float) -> str:
    return f"{math.ceil(seconds * 1000)}ms"


def _note_dropped(service: ExportedService, notes: list[str]) -> None:
    if service.watch is not None:
        notes.append(f"{service.name}: watch: is dropped: systemd has no restart on file change")
    if service.restart_dependents:
        notes.append(f"{service.name}: restart_dependents: is dropped")
    if service.tty:
        notes.append(f"{service.name}: tty: is dropped: units log to the journal")
