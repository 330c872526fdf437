"""`devstack export kubernetes`: workloads, Services, ConfigMaps and Secrets in one manifest.

A Deployment per service, or a Job for a one-shot service that others wait on to
complete; a Service for its port; a ConfigMap for plain values and a Secret (in its
own 0600 file) for secret ones; readiness probes from `ready:`. Every object carries
the app.kubernetes.io labels naming the devstack project and service. The image must
hold the repo at /app: a cluster cannot mount the laptop's checkout.
"""

from __future__ import annotations

import math
import re
from typing import Any

from devstack.core.errors import DevstackError, Problem
from devstack.export.probes import attempts, http_parts, tcp_address
from devstack.export.stack import (
    CONTAINER_ROOT,
    PRIVATE,
    Export,
    ExportedService,
    File,
    Stack,
    require_images,
)
from devstack.export.yamlout import dump_all

MANIFEST = "manifest.yaml"
SECRETS = "secrets.yaml"
JOB_BACKOFF_LIMIT = 6  # kubernetes' own default, for restart: on-failure without max_restarts


def export_kubernetes(stack: Stack) -> Export:
    require_images(stack, "kubernetes")
    names = resource_names(stack)
    notes = [f"the repo is not mounted: each image must contain it at {CONTAINER_ROOT}"]
    objects: list[dict[str, Any]] = []
    secrets: list[dict[str, Any]] = []
    for service in stack.services:
        name = names[service.name]
        labels = _labels(stack, service)
        if service.env:
            objects.append(_config_map(name, labels, service.env))
        if service.secrets:
            secrets.append(_secret(name, labels, service.secrets))
        objects.append(_workload(stack, service, name, labels, notes))
        if service.port is not None:
            objects.append(_service(name, labels, service.port))
        _note_dropped(service, notes)
    header = "# Written by `devstack export kubernetes` from devstack.yaml: edit that, not this.\n"
    files = [File(MANIFEST, header + dump_all(objects))]
    if secrets:
        files.append(File(SECRETS, header + dump_all(secrets), PRIVATE))
    return Export(tuple(files), tuple(notes))


def resource_names(stack: Stack) -> dict[str, str]:
    """Service name -> an RFC 1035 label (`my_api.v2` -> `my-api-v2`), the DNS name
    other pods reach it by; two services that would share one are an error."""
    names: dict[str, str] = {}
    problems = []
    for service in stack.services:
        name = re.sub(r"[^a-z0-9-]+", "-", service.name.lower()).strip("-")[:63].rstrip("-")
        if not name or not name[0].isalpha():
            name = f"svc-{name}"[:63].rstrip("-")
        clash = next((other for other, taken in names.items() if taken == name), None)
        if clash is not None:
            problems.append(
                Problem(
                    f"services '{clash}' and '{service.name}' both become '{name}' in kubernetes",
                    service.location,
                    hint="rename one of them",
                )
            )
        names[service.name] = name
    if problems:
        raise DevstackError(problems)
    return names


def _labels(stack: Stack, service: ExportedService) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": _label_value(service.name),
        "app.kubernetes.io/part-of": _label_value(stack.app),
        "app.kubernetes.io/managed-by": "devstack",
    }


def _label_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")


def _selector(labels: dict[str, str]) -> dict[str, str]:
    return {key: labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}


def _meta(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "labels": dict(labels)}


def _config_map(name: str, labels: dict[str, str], env: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{name}-env", labels),
        "data": dict(env),
    }


def _secret(name: str, labels: dict[str, str], secrets: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(f"{name}-secrets", labels),
        "type": "Opaque",
        "stringData": dict(secrets),
    }


def _service(name: str, labels: dict[str, str], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, labels),
        "spec": {
            "selector": _selector(labels),
            "ports": [{"name": "main", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def _workload(
    stack: Stack, service: ExportedService, name: str, labels: dict[str, str], notes: list[str]
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "containers": [_container(service, name, notes)],
        "terminationGracePeriodSeconds": math.ceil(service.stop_timeout),
    }
    template = {"metadata": {"labels": dict(labels)}, "spec": pod}
    if stack.waited_on(service.name, "completed"):
        if service.restart == "always":
            notes.append(f"{service.name}: restart: always becomes OnFailure: a Job ends")
        return _job(service, name, labels, template, pod)
    if service.restart != "always":
        notes.append(
            f"{service.name}: restart: {service.restart} becomes always: "
            "a Deployment always restarts its pods"
        )
    pod["restartPolicy"] = "Always"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, labels),
        "spec": {
            "replicas": 1 if service.autostart else 0,
            "selector": {"matchLabels": _selector(labels)},
            "template": template,
        },
    }


def _job(
    service: ExportedService,
    name: str,
    labels: dict[str, str],
    template: dict[str, Any],
    pod: dict[str, Any],
) -> dict[str, Any]:
    """A one-shot service others wait on to complete runs to its end, restarts per policy."""
    if service.restart == "no":
        pod["restartPolicy"], backoff = "Never", 0
    else:
        pod["restartPolicy"] = "OnFailure"
        backoff = service.max_restarts if service.max_restarts is not None else JOB_BACKOFF_LIMIT
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, labels),
        "spec": {"backoffLimit": backoff, "template": template},
    }


def _container(service: ExportedService, name: str, notes: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": service.image,
        "command": list(service.argv),
        "workingDir": service.container_workdir,
    }
    if service.port is not None:
        container["ports"] = [{"name": "main", "containerPort": service.port, "protocol": "TCP"}]
    env_from = []
    if service.env:
        env_from.append({"configMapRef": {"name": f"{name}-env"}})
    if service.secrets:
        env_from.append({"secretRef": {"name": f"{name}-secrets"}})
    if env_from:
        container["envFrom"] = env_from
    if service.ready is not None:
        probe = _readiness(service, notes)
        if probe is not None:
            container["readinessProbe"] = probe
    if service.tty:
        container["tty"] = True
        container["stdin"] = True
    return container


def _readiness(service: ExportedService, notes: list[str]) -> dict[str, Any] | None:
    ready = service.ready
    assert ready is not None
    action: dict[str, Any]
    if ready.kind == "http":
        scheme, port, path = http_parts(ready.target)
        action = {"httpGet": {"path": path, "port": port, "scheme": scheme}}
    elif ready.kind == "tcp":
        action = {"tcpSocket": {"port": tcp_address(ready.target)[1]}}
    elif ready.kind == "cmd":
        action = {"exec": {"command": ["/bin/sh", "-c", ready.target]}}
    else:
        notes.append(
            f"{service.name}: ready: {{log: {ready.target!r}}} has no readiness probe "
            "equivalent; the pod is ready once it runs"
        )
        return None
    period = max(1, math.ceil(ready.interval))  # kubernetes counts whole seconds
    return {**action, "periodSeconds": period, "failureThreshold": attempts(ready, period)}


def _note_dropped(service: ExportedService, notes: list[str]) -> None:
    for dep in service.depends_on:
        notes.append(
            f"{service.name}: depends_on {dep.name} ({dep.condition}) is dropped: "
            "kubernetes starts every workload at once"
        )
    if service.stop_signal != "SIGTERM":
        notes.append(f"{service.name}: stop_signal {service.stop_signal} becomes SIGTERM")
    if service.watch is not None:
        notes.append(f"{service.name}: watch: is dropped: kubernetes has no restart on change")
    if service.restart_dependents:
        notes.append(f"{service.name}: restart_dependents: is dropped")
