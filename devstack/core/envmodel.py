"""The resolved environment with its provenance, as data: what each service gets, from
which layer, what that value shadowed, what was dropped and why; the env files as read,
and the frameworks' own loaders.

envresolve.py builds it (envfile.py reads the files, frameworks.py names the loaders).
The long-lived `up` gets it resolved, pickled by the child that checks the run
(runtime/checker.py), and a pickle imports the module that defines each class it holds:
here, so that `up` never imports the resolution code, interpolate, turboenv,
frameworks, envfile (issue 16: idle, below foreman's). Of devstack's own it imports
only the secrets' masking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from devstack.core.secrets import Masking

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from devstack.core.errors import Location, Problem
    from devstack.core.model import EnvFileRef, VarDecl

SourceKind = Literal[
    "root-file",
    "framework-file",
    "service-file",
    "shell",
    "config",
    "port",
    "cli",
    "package-manager",
    "devstack",
]


@dataclass(frozen=True)
class Source:
    """One layer's value for a name: `.env:3`, `services/jobs/.env:7`, `shell`, ..."""

    kind: SourceKind
    label: str
    value: str
    location: Location | None = None
    written: str | None = None  # the value as written, when it used other variables
    uses: tuple[Use, ...] = ()  # those variables, in order
    # The secret values it holds through those (`secrets.derived_from`): masked inside it.
    derived: tuple[str, ...] = ()


@dataclass(frozen=True)
class Use:
    """A variable a value refers to, and the source it had there (None: not defined)."""

    name: str
    source: Source | None


@dataclass(frozen=True)
class Variable:
    """A variable a service receives: the winning source and those it shadowed."""

    name: str
    value: str
    source: Source
    shadowed: tuple[Source, ...] = ()  # highest precedence first


@dataclass(frozen=True)
class Dropped:
    """A name some env file defines that the service does not receive, and why."""

    name: str
    sources: tuple[Source, ...]
    reason: str


@dataclass
class ServiceEnv:
    name: str
    values: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    dropped: dict[str, Dropped] = field(default_factory=dict)

    def masking(self, declared: Mapping[str, VarDecl] | None) -> Masking:
        """How this service's values are shown: secrets by name and value, and those
        built from a secret by interpolation (`AUTH=Bearer ${API_TOKEN}`)."""
        derived = {
            name: variable.source.derived
            for name, variable in self.variables.items()
            if variable.source.derived
        }
        return Masking(declared, derived)


@dataclass(frozen=True)
class EnvEntry:
    """`NAME=value` at `file:line`; `interpolate` is False for single-quoted values."""

    name: str
    value: str
    location: Location
    interpolate: bool = True


@dataclass(frozen=True)
class EnvFile:
    """One env file as read: its entries in file order and what was wrong with it."""

    path: Path
    display: str
    exists: bool
    entries: tuple[EnvEntry, ...] = ()
    problems: tuple[Problem, ...] = ()

    def names(self) -> set[str]:
        return {entry.name for entry in self.entries}


@dataclass(frozen=True)
class EnvLoader:
    """A framework's own env-file loader: its files, highest precedence first."""

    slug: str
    name: str
    files: tuple[str, ...]
    source: str  # where the order is documented or implemented
    # Whether it expands $NAME / ${NAME} (dotenv-expand, bun); plain dotenv does not.
    expands: bool = True
    # Whether each file is expanded on its own, in load order (highest precedence first),
    # so ${NAME} cannot see a name only a later-loaded file defines (@next/env does this).
    expands_per_file: bool = False


@dataclass
class ProjectEnv:
    services: dict[str, ServiceEnv]
    problems: list[Problem]
    env_files: tuple[Path, ...]  # every env file that feeds some service, present or not
    files: dict[Path, EnvFile]
    shell: Mapping[str, str]
    # service -> the framework that reads env files itself, and the files it reads
    loaders: dict[str, tuple[EnvLoader, tuple[EnvFileRef, ...]]] = field(default_factory=dict)

    def secret_texts(self, declared: Mapping[str, VarDecl] | None) -> set[str]:
        """Every secret value a service gets, or a value it gets was built from: what
        devstack's own messages must never show (`app --owner $OWNER` expanded by a shell)."""
        found: set[str] = set()
        for service_env in self.services.values():
            masking = service_env.masking(declared)
            for name, value in service_env.values.items():
                found.update(masking.secret_texts(name, value))
        return found
