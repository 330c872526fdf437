"""`devstack export compose`: one compose service per devstack service.

The repo is bind-mounted at /app and each service runs in its own cwd under it;
plain values go in `environment`, secret ones only in a 0600 `env_file` beside
compose.yaml; `depends_on` keeps devstack's conditions, `ready:` becomes a
healthcheck (so `ready` maps to `service_healthy`), `restart:` a restart policy.
Compose interpolates `$` everywhere in its file, so every `$` is written `$$`.
"""

from __future__ import annotations

from typing import Any

from devstack.export.probes import attempts, shell_check
from devstack.export.stack import (
    CONTAINER_ROOT,
    PRIVATE,
    Export,
    ExportedService,
    File,
    Stack,
    require_images,
)
from devstack.export.yamlout import dump

COMPOSE_FILE = "compose.yaml"
CHECK_TIMEOUT = 5.0  # one healthcheck attempt: a hung answer must not stall the check


def export_compose(stack: Stack) -> Export:
    require_images(stack, "compose")
    notes: list[str] = []
    services: dict[str, Any] = {}
    env_files: list[File] = []
    for service in stack.services:
        services[service.name] = _service(stack, service, notes)
        if service.secrets:
            env_files.append(File(secrets_file(service), dotenv(service.secrets), PRIVATE))
    document = _escape_dollars({"name": stack.app, "services": services})
    header = "# Written by `devstack export compose` from devstack.yaml: edit that, not this.\n"
    return Export((File(COMPOSE_FILE, header + dump(document)), *env_files), tuple(notes))


def secrets_file(service: ExportedService) -> str:
    return f"{service.name}.secrets.env"


def _service(stack: Stack, service: ExportedService, notes: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": service.image,
        "command": list(service.argv),
        "working_dir": service.container_workdir,
        "volumes": [{"type": "bind", "source": stack.root_from_output, "target": CONTAINER_ROOT}],
        # An init as PID 1: the command's shell would ignore the stop signal there, and
        # nothing would reap an orphan, where devstack signals the group and reaps.
        "init": True,
    }
    if service.env:
        spec["environment"] = dict(service.env)
    if service.secrets:
        spec["env_file"] = [secrets_file(service)]
    if service.port is not None:
        spec["ports"] = [f"{service.port}:{service.port}"]
    if service.depends_on:
        spec["depends_on"] = {
            dep.name: {"condition": _condition(stack, service, dep.name, dep.condition, notes)}
            for dep in service.depends_on
        }
    if service.ready is not None:
        check = shell_check(service.ready)
        if check is None:
            notes.append(
                f"{service.name}: ready: {{log: {service.ready.target!r}}} has no healthcheck "
                "equivalent; dependents wait only for it to start"
            )
        else:
            spec["healthcheck"] = {
                "test": ["CMD-SHELL", check],
                "interval": duration(service.ready.interval),
                "timeout": duration(CHECK_TIMEOUT),
                "retries": attempts(service.ready, service.ready.interval),
            }
    spec["restart"] = _restart(service, notes)
    if service.stop_signal != "SIGTERM":
        spec["stop_signal"] = service.stop_signal
    spec["stop_grace_period"] = duration(service.stop_timeout)
    if service.tty:
        spec["tty"] = True
    if not service.autostart and not any(
        dep.name == service.name for other in stack.services for dep in other.depends_on
    ):
        spec["profiles"] = ["manual"]  # started only by `docker compose --profile manual up`
    _note_dropped(service, notes)
    return spec


def _condition(
    stack: Stack, service: ExportedService, name: str, condition: str, notes: list[str]
) -> str:
    if condition == "started":
        return "service_started"
    if condition == "completed":
        return "service_completed_successfully"
    probe = stack.by_name(name).ready
    if probe is None:
        return "service_started"  # devstack: ready as soon as it has started
    if shell_check(probe) is None:
        notes.append(f"{service.name}: depends_on {name} (ready) becomes service_started")
        return "service_started"
    return "service_healthy"


def _restart(service: ExportedService, notes: list[str]) -> str:
    if service.restart == "on-failure" and service.max_restarts is not None:
        return f"on-failure:{service.max_restarts}"
    if service.restart == "always" and service.max_restarts is not None:
        notes.append(f"{service.name}: max_restarts is dropped: compose caps only on-failure")
    return service.restart


def _note_dropped(service: ExportedService, notes: list[str]) -> None:
    if service.watch is not None:
        notes.append(f"{service.name}: watch: is dropped: compose has no restart on file change")
    if service.restart_dependents:
        notes.append(f"{service.name}: restart_dependents: is dropped")


def duration(seconds: float) -> str:
    """A Go duration compose accepts: 0.25 -> `250ms`, 60 -> `60s`."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def dotenv(values: dict[str, str]) -> str:
    """An env file compose reads back exactly: single quotes are literal in compose's
    dotenv; a value holding a quote or a newline is double-quoted with escapes."""
    lines = []
    for name, value in values.items():
        if "'" not in value and "\n" not in value and "\r" not in value:
            lines.append(f"{name}='{value}'")
        else:
            escaped = (
                value.replace("\\", "\\\\")
                .replace('"', '\\"')
                .replace("$", "\\$")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
            lines.append(f'{name}="{escaped}"')
    return "".join(f"{line}\n" for line in lines)


def _escape_dollars(node: Any) -> Any:
    if isinstance(node, str):
        return node.replace("$", "$$")
    if isinstance(node, dict):
        return {key: _escape_dollars(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_escape_dollars(item) for item in node]
    return node
