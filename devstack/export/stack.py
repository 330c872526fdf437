"""What every exporter starts from: the selected services as `devstack config` resolves them.

One `ExportedService` per service, its environment split into plain values and secret
ones (a secret name, or a URL with a password), and without the system basics
(`PATH`, `HOME`, ...) that came from the exporting shell: the target has its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from devstack.core.envmodel import ProjectEnv, ServiceEnv
from devstack.core.envresolve import is_system_basic
from devstack.core.errors import DevstackError, Location, Problem
from devstack.core.graph import with_dependencies
from devstack.core.model import Dependency, Project, ReadyProbe, RestartMode, WatchSpec

# Where compose mounts the repo and kubernetes expects the image to hold it.
CONTAINER_ROOT = "/app"
PRIVATE = 0o600
PUBLIC = 0o644


@dataclass(frozen=True)
class File:
    """One file an exporter wants written: name relative to the output directory."""

    name: str
    content: str
    mode: int = PUBLIC


@dataclass(frozen=True)
class Export:
    files: tuple[File, ...]
    notes: tuple[str, ...] = ()  # what the target cannot express, for stderr


@dataclass(frozen=True)
class ExportedService:
    name: str
    argv: tuple[str, ...]
    workdir: str  # relative to the repo root, "." for the root itself
    env: dict[str, str]  # plain values, sorted by name
    secrets: dict[str, str]  # secret values, sorted by name: only ever in 0600 files
    location: Location
    depends_on: tuple[Dependency, ...] = ()
    ready: ReadyProbe | None = None
    port: int | None = None
    restart: RestartMode = "no"
    max_restarts: int | None = None
    stop_signal: str = "SIGTERM"
    stop_timeout: float = 5.0
    autostart: bool = True
    tty: bool = False
    watch: WatchSpec | None = None
    restart_dependents: bool = False
    image: str | None = None

    @property
    def env_names(self) -> list[str]:
        return sorted({*self.env, *self.secrets})

    @property
    def container_workdir(self) -> str:
        return CONTAINER_ROOT if self.workdir == "." else f"{CONTAINER_ROOT}/{self.workdir}"


@dataclass(frozen=True)
class Stack:
    """The services to export, in devstack.yaml order, and where the output goes."""

    app: str  # the project's name: [a-z0-9][a-z0-9_-]*, the repo directory's by default
    root: Path
    services: tuple[ExportedService, ...]
    # The repo as seen from the output directory (compose mounts it) and the output
    # directory itself (units name their env files by absolute path).
    root_from_output: str = "."
    output_dir: Path = Path(".")
    left_to_target: tuple[str, ...] = field(default=())  # basics not exported

    def by_name(self, name: str) -> ExportedService:
        return next(service for service in self.services if service.name == name)

    def waited_on(self, name: str, condition: str) -> bool:
        """Whether some exported service waits for `name` with this condition."""
        return any(
            dep.name == name and dep.condition == condition
            for service in self.services
            for dep in service.depends_on
        )


def build_stack(
    project: Project,
    env: ProjectEnv,
    names: list[str],
    *,
    app: str | None = None,
    image: str | None = None,
    output_dir: Path = Path("."),
) -> Stack:
    """The named services and what they depend on (all services when none are named)."""
    edges = {name: service.dependency_names for name, service in project.services.items()}
    chosen = with_dependencies(edges, names) if names else set(edges)
    services = []
    left: set[str] = set()
    for name, service in project.services.items():
        if name not in chosen:
            continue
        plain, secret, basics = _split_env(project, env.services[name])
        left.update(basics)
        services.append(
            ExportedService(
                name=name,
                argv=service.argv,
                workdir=project.display_path(service.cwd) or ".",
                env=plain,
                secrets=secret,
                location=service.location,
                depends_on=service.depends_on,
                ready=service.ready,
                port=service.port,
                restart=service.restart,
                max_restarts=service.max_restarts,
                stop_signal=service.stop_signal.name,
                stop_timeout=service.stop_timeout,
                autostart=service.autostart,
                tty=service.tty,
                watch=service.watch,
                restart_dependents=service.restart_dependents,
                image=service.image or project.image or image,
            )
        )
    return Stack(
        app=app_name(app or project.root.name),
        root=project.root,
        services=tuple(services),
        output_dir=output_dir,
        root_from_output=_relative(project.root, output_dir),
        left_to_target=tuple(sorted(left)),
    )


def _split_env(
    project: Project, resolved: ServiceEnv
) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """(plain values, secret values, names of the shell's system basics left out).

    The layers' values only: devstack's own layer (`envresolve.as_spawned`) is left out,
    as the target platform is not `up`: a run's DEVSTACK_RUN_ID would mark a deployed
    process as that run's, FORCE_COLOR and PYTHONUNBUFFERED are for devstack's pipes."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    basics: set[str] = set()
    masking = resolved.masking(project.vars)  # a value built from a secret is one too
    for key, value in sorted(resolved.values.items()):
        variable = resolved.variables.get(key)
        # PATH and PWD as the package manager sets them derive from this machine's shell too.
        machine = ("shell", "package-manager")
        if variable is not None and variable.source.kind in machine and is_system_basic(key):
            basics.add(key)
        else:
            (secret if masking.has_hidden_part(key, value) else plain)[key] = value
    return plain, secret, basics


def app_name(text: str) -> str:
    """A name compose, systemd and kubernetes all accept: `My App` -> `my-app`."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name or "devstack"


def require_images(stack: Stack, target: str) -> None:
    """compose and kubernetes run every service in an image, in the repo at /app: say
    which services lack an image or work outside the repo, all at once."""
    problems = [
        Problem(
            f"service '{service.name}' has no image to run in with {target}",
            service.location,
            hint="add `image: node:22-slim` (for example) to the service or at the top "
            "of devstack.yaml, or pass --image",
        )
        for service in stack.services
        if not service.image
    ]
    problems += [
        Problem(
            f"service '{service.name}' runs in {service.workdir}, outside the repo that "
            f"{target} puts at {CONTAINER_ROOT}",
            service.location,
            hint="give it a cwd inside the repo",
        )
        for service in stack.services
        if Path(service.workdir).is_absolute() or service.workdir.startswith("..")
    ]
    if problems:
        raise DevstackError(problems)


def _relative(root: Path, output_dir: Path) -> str:
    return os.path.relpath(root, output_dir)
