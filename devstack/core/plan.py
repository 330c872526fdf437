"""A service as it will run: argv, cwd, masked env, dependencies (for `devstack config`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from devstack.core.envmodel import ProjectEnv
from devstack.core.interpolate import InvalidTemplate, interpolate
from devstack.core.model import Project, ReadyProbe
from devstack.core.secrets import Masking, derived_from, mask_argv, masked


def service_plan(
    project: Project, env: ProjectEnv, name: str, *, reveal: bool = False
) -> dict[str, object]:
    service = project.services[name]
    masking = env.services[name].masking(project.vars)
    plan: dict[str, object] = {
        "argv": list(service.argv) if reveal else mask_argv(service.argv),
        "cwd": project.display_path(service.cwd) or ".",
        "depends_on": {d.name: d.condition for d in service.depends_on},
        "env": {
            key: masking.masked(key, value, reveal)
            for key, value in sorted(env.services[name].values.items())
        },
        "restart": service.restart,
        "stop_signal": service.stop_signal.name,
        "stop_timeout": service.stop_timeout,
        "autostart": service.autostart,
    }
    if service.port is not None:
        plan["port"] = service.port
    if service.ready is not None:
        probe, _ = resolved_probe(service.ready, env.services[name].values)
        plan["ready"] = {
            probe.kind: probe.target
            if reveal
            else shown_probe_target(service.ready, env.services[name].values, masking),
            "timeout": service.ready.timeout,
            "interval": service.ready.interval,
        }
    if service.watch is not None:
        plan["watch"] = {
            "paths": list(service.watch.paths),
            "ignore": list(service.watch.ignore),
            "debounce_ms": service.watch.debounce_ms,
        }
    if service.max_restarts is not None:
        plan["max_restarts"] = service.max_restarts
    if service.tty:
        plan["tty"] = True
    return plan


def shown_probe_target(probe: ReadyProbe, values: Mapping[str, str], masking: Masking) -> str:
    """The probe's target, expanded, as a message may show it: URL passwords, secret-looking
    parts and the secrets it interpolated (`http://localhost:${PORT}/?key=${API_KEY}`)
    masked."""
    resolved, _ = resolved_probe(probe, values)
    derived: tuple[str, ...] = ()
    if resolved is not probe:  # expanded: the same expansion again, to see what it used
        used = interpolate(probe.target, values.get).used
        derived = derived_from(
            ((name, value, masking.derived.get(name, ())) for name, value in used.items() if value),
            masking.declared,
        )
    return masked("ready", resolved.target, derived=derived)


def resolved_probe(probe: ReadyProbe, values: Mapping[str, str]) -> tuple[ReadyProbe, list[str]]:
    """The probe with `${NAME}` in an http/tcp target expanded from the service's own
    environment (`http://localhost:${PORT}/health`), and what went wrong, as phrases
    ("uses ${PORT}, which is not set").

    A log regex and a probe command are left as written: `$` is a regex anchor, and
    the shell expands a command's variables itself."""
    if probe.kind not in ("http", "tcp") or "$" not in probe.target:
        return probe, []
    try:
        expansion = interpolate(probe.target, values.get)
    except InvalidTemplate as error:
        return probe, [f"is not a valid interpolation: {error}"]
    problems = [f"uses {reference}, which is not set" for reference in expansion.undefined]
    problems += [str(missing) for missing in expansion.missing]
    return dataclasses.replace(probe, target=expansion.value), problems
