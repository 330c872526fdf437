"""The project as devstack understands it: frozen dataclasses, no behaviour.

`config.py` builds a `Project` from devstack.yaml; everything else reads it.
Paths are absolute; every element remembers the `Location` it was declared at,
so any later message can point at the line to change.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from devstack.core.cmdline import command_argv
from devstack.core.errors import Location

EnvMode = Literal["strict", "loose"]
RestartMode = Literal["no", "on-failure", "always"]
DependencyCondition = Literal["started", "ready", "completed"]
ProbeKind = Literal["http", "tcp", "log", "cmd"]
EnvRuleKind = Literal["pass", "glob", "negate", "set"]

DEFAULT_ENV_FILES = (".env", ".env.local")
DEFAULT_STOP_TIMEOUT = 5.0
DEFAULT_PROBE_TIMEOUT = 60.0
DEFAULT_PROBE_INTERVAL = 0.25
DEFAULT_DEBOUNCE_MS = 50


@dataclass(frozen=True)
class EnvRule:
    """One item of an `env` list or mapping.

    pass:   `NAME` or `NAME: null`, let NAME through from env files and the shell.
    glob:   `NEXT_PUBLIC_*`, let every matching name through.
    negate: `!NAME` (may be a glob), never let it through, even if another rule does.
    set:    `NAME=value` or `NAME: value`, set it; `value` is raw, `${...}` not expanded.
    """

    kind: EnvRuleKind
    name: str
    location: Location
    value: str | None = None


@dataclass(frozen=True)
class EnvFileRef:
    """An env file a layer reads. A missing file is fine unless it was listed explicitly."""

    path: Path
    display: str
    explicit: bool
    location: Location | None


@dataclass(frozen=True)
class VarDecl:
    """A `vars:` declaration: what doctor and up check about one variable."""

    name: str
    location: Location
    required: bool = False
    secret: bool = False
    # None: no check; () means "all services that receive it"; else those services.
    same_across: tuple[str, ...] | None = None
    pattern: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Dependency:
    name: str
    condition: DependencyCondition
    location: Location


@dataclass(frozen=True)
class ReadyProbe:
    """How devstack knows a service is ready: a URL answers 2xx, a port accepts,
    a log line matches, or a command exits 0."""

    kind: ProbeKind
    target: str
    location: Location
    timeout: float = DEFAULT_PROBE_TIMEOUT
    interval: float = DEFAULT_PROBE_INTERVAL


@dataclass(frozen=True)
class WatchSpec:
    """Globs relative to the service's cwd; a trailing `/` or a bare directory means
    everything under it."""

    paths: tuple[str, ...]
    location: Location
    ignore: tuple[str, ...] = ()
    debounce_ms: int = DEFAULT_DEBOUNCE_MS


@dataclass(frozen=True)
class Service:
    name: str
    # A string is exec'd as its words when it has no shell syntax, else runs under
    # /bin/sh -c (devstack.core.cmdline); a tuple is exec'd as it is.
    cmd: str | tuple[str, ...]
    cwd: Path
    location: Location
    env: tuple[EnvRule, ...] = ()
    env_files: tuple[EnvFileRef, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    ready: ReadyProbe | None = None
    port: int | None = None
    restart: RestartMode = "no"
    max_restarts: int | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    autostart: bool = True
    tty: bool = False
    watch: WatchSpec | None = None
    restart_dependents: bool = False
    # The npm package name given by `package:`; else packages.package_name reads
    # <cwd>/package.json, so `@v1/jobs` can be typed wherever `jobs` can (issue 12 item 7).
    package: str | None = None
    image: str | None = None  # for `devstack export compose|kubernetes`

    @property
    def argv(self) -> tuple[str, ...]:
        return command_argv(self.cmd)

    @property
    def dependency_names(self) -> tuple[str, ...]:
        return tuple(dep.name for dep in self.depends_on)


@dataclass(frozen=True)
class Project:
    root: Path
    config_path: Path
    services: Mapping[str, Service]  # in file order
    env_mode: EnvMode = "strict"
    env: tuple[EnvRule, ...] = ()
    env_files: tuple[EnvFileRef, ...] = ()
    vars: Mapping[str, VarDecl] = field(default_factory=dict)
    image: str | None = None  # the default container image for `devstack export`

    @property
    def state_dir(self) -> Path:
        """Where devstack keeps logs, the control socket and run state."""
        return self.root / ".devstack"

    def display_path(self, path: Path) -> str:
        """A path as shown to people: relative to the repo root when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
