"""The environment each service gets, and where every value came from.

Layers, lowest to highest precedence (the one place this order is stated):
  1. the root env files (`.env`, then `.env.local`)
  1b. for a service whose framework loads env files itself (Next.js, Vite, bun, the
     trigger.dev CLI, dotenv: `frameworks.detect_loader`), those files in the framework's
     own order; they replace the default `<cwd>/.env` and `.env.local` (issue 12 item 4)
  2. the service's own env files (`<cwd>/.env`, then `<cwd>/.env.local`); listed
     explicitly, they are what a dotenv wrapper would put in the environment, so they
     beat the framework's files
  3. the shell environment devstack was started from
  4. values set in devstack.yaml: `port:` (as PORT), then global `env`, then the service's
  5. `--env NAME=value` on the command line
  6. devstack's own (source kind "devstack", `OWN_VARIABLES`), added only when `up`
     spawns a service (runtime/firstwave.spawn_env): PYTHONUNBUFFERED=1, PWD and, printing
     in colour, FORCE_COLOR=1 below all of these (your value wins); the run's markers
     DEVSTACK_RUN_ID, DEVSTACK_SERVICE and DEVSTACK_REPO above them all. `as_spawned`
     adds this layer for `devstack env` and its story; `values` never holds it, so
     `run`, `export` and `env --format` leave it out: a run's markers handed to a process
     that is not the run's would make the next `up` stop it as its own.

In strict mode the root files and the shell contribute only names that an `env` rule
lists, that turbo's strict mode always passes (`turboenv.STRICT_PASS_THROUGH`), or that
match the env prefixes of the framework turbo infers from the service's package.json
(`NEXT_PUBLIC_*` for Next.js); the service's own files and set values always
contribute. `!NAME` keeps a name out of every layer but `--env`. Loose mode lets every
name through. Interpolations in values (compose-spec's: `$NAME`, `${NAME:-default}`,
`${NAME:?message}` ..., see interpolate.py) see what lower layers (and earlier lines of
the same layer) define, then the shell; each value keeps the sources of the names it
used. An undefined `${NAME}` with no default is an error, not compose's empty string.

Last, PATH gets `<cwd>/node_modules/.bin` and each ancestor's up to the repo root in
front, as npm, pnpm, yarn and bun do for a script (issue 12 item 2).

What it returns (`ProjectEnv`, `Variable`, `Source` ...) is defined in envmodel.py: the
long-lived `up` reads it without importing this module (issue 16).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.core.envfile import read_env_file
from devstack.core.envmodel import (
    Dropped,
    EnvFile,
    EnvLoader,
    ProjectEnv,
    ServiceEnv,
    Source,
    SourceKind,
    Use,
    Variable,
)
from devstack.core.errors import Location, Problem, closest_names
from devstack.core.frameworks import detect_loader
from devstack.core.interpolate import (
    UNCLOSED,
    InvalidTemplate,
    Missing,
    Reference,
    expand,
    interpolate,
)
from devstack.core.model import EnvFileRef, EnvRule, Project, Service
from devstack.core.secrets import derived_from, is_secret, masked
from devstack.core.turboenv import (
    STRICT_PASS_THROUGH,
    TurboFramework,
    infer_framework,
    matching_wildcard,
    package_dependencies,
)


@dataclass(frozen=True)
class Admission:
    """Which names a service lets through from the root files and the shell."""

    mode: str
    rules: tuple[EnvRule, ...]
    framework: TurboFramework | None = None

    def negated(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._by_kind[0])

    def listed(self, name: str) -> bool:
        _, names, globs = self._by_kind
        return name in names or any(fnmatch.fnmatchcase(name, glob) for glob in globs)

    @functools.cached_property
    def _by_kind(self) -> tuple[tuple[str, ...], frozenset[str], tuple[str, ...]]:
        """(negations, names listed or set, globs): asked once per shell variable and
        service, so a name is looked up in a set rather than matched against each rule."""
        rules = self.rules
        return (
            tuple(rule.name for rule in rules if rule.kind == "negate"),
            frozenset(rule.name for rule in rules if rule.kind in ("pass", "set")),
            tuple(rule.name for rule in rules if rule.kind == "glob"),
        )

    def admits(self, name: str) -> bool:
        if self.negated(name):
            return False
        return self.mode == "loose" or self.listed(name) or self.why_builtin(name) is not None

    def why_builtin(self, name: str) -> str | None:
        """Why strict mode lets `name` in without an `env` rule, as turbo would; or None."""
        pattern = matching_wildcard(name, STRICT_PASS_THROUGH)
        if pattern is not None:
            shown = name if pattern == name else f"{name} ({pattern})"
            return f"turbo passes {shown} in strict mode"
        framework = self.framework
        if framework is not None:
            pattern = matching_wildcard(name, framework.env_wildcards)
            if pattern is not None:
                return f"framework {framework.slug}: {pattern}"
        return None

    def why_admitted(self, name: str) -> str:
        """One line on why `name` passes (or not) for this service."""
        if self.negated(name):
            return self.reason_dropped(name)
        rule = next(
            (
                r
                for r in self.rules
                if (r.kind in ("pass", "set") and r.name == name)
                or (r.kind == "glob" and fnmatch.fnmatchcase(name, r.name))
            ),
            None,
        )
        if rule is not None:
            listed = name if rule.kind != "glob" else rule.name
            return f"listed as {listed} in `env` at {_line_of(rule.location)}"
        builtin = self.why_builtin(name)
        if builtin is not None:
            return builtin
        return "loose mode passes every name" if self.mode == "loose" else self.reason_dropped(name)

    def reason_dropped(self, name: str) -> str:
        negation = next(
            (r for r in self.rules if r.kind == "negate" and fnmatch.fnmatchcase(name, r.name)),
            None,
        )
        if negation is not None:
            return f"excluded by '!{negation.name}' at {negation.location}"
        framework = f" or {self.framework.slug}'s prefixes" if self.framework else ""
        return f"strict mode: not listed in any `env`, not one turbo always passes{framework}"


def is_system_basic(name: str) -> bool:
    """A name strict mode passes from the shell with no `env` rule: one turbo always
    passes (`turboenv.STRICT_PASS_THROUGH`); a framework's prefixes aside."""
    return matching_wildcard(name, STRICT_PASS_THROUGH) is not None


def admission(project: Project, service: Service) -> Admission:
    framework = infer_framework(package_dependencies(service.cwd))
    return Admission(project.env_mode, (*project.env, *service.env), framework)


def resolve_project(
    project: Project, shell: Mapping[str, str], cli: Mapping[str, str]
) -> ProjectEnv:
    """Every service's environment with provenance, and every problem found on the way."""
    files: dict[Path, EnvFile] = {}
    problems: dict[tuple[object, ...], Problem] = {}

    def read(path: Path, display: str) -> EnvFile:
        if path not in files:
            files[path] = read_env_file(path, display)
        return files[path]

    root_files = [read(ref.path, ref.display) for ref in project.env_files]
    root_paths = {ref.path for ref in project.env_files}
    # One (immutable) Source per shell variable, shared by every service.
    shell_sources = {name: Source("shell", "shell", value) for name, value in shell.items()}
    services = {}
    loaders: dict[str, tuple[EnvLoader, tuple[EnvFileRef, ...]]] = {}
    for service in project.services.values():
        # A service at the repo root shares the root files: they stay filtered.
        loader, framework_refs, own_refs = _framework_files(project, service)
        if loader is not None:
            loaders[service.name] = (loader, framework_refs)
        framework_files = [read(ref.path, ref.display) for ref in framework_refs]
        own_files = [read(ref.path, ref.display) for ref in own_refs if ref.path not in root_paths]
        resolver = _ServiceResolver(project, service, shell, cli, shell_sources)
        services[service.name] = resolver.resolve(root_files, own_files, framework_files)
        _put_package_bins_on_path(project, service, services[service.name])
        _pwd_is_the_cwd(project, service, services[service.name])
        for problem in resolver.problems:
            problems.setdefault((problem.location, problem.message), problem)
    for ref in (*project.env_files, *(r for s in project.services.values() for r in s.env_files)):
        env_file = files.get(ref.path)
        if ref.explicit and env_file is not None and not env_file.exists:
            problem = _missing_file(ref)
            problems.setdefault((problem.location, problem.message), problem)
    for env_file in files.values():
        for problem in env_file.problems:
            problems.setdefault((problem.location, problem.message), problem)
    ordered = sorted(problems.values(), key=_problem_order)
    return ProjectEnv(services, ordered, tuple(files), files, shell, loaders)


def _framework_files(
    project: Project, service: Service
) -> tuple[EnvLoader | None, tuple[EnvFileRef, ...], tuple[EnvFileRef, ...]]:
    """(loader, the files it reads lowest precedence first, the service's own files).
    The framework's files replace the default `.env`/`.env.local`; explicit env_files stay
    on top, and a file that is both is read once, as the explicit one."""
    loader = detect_loader(service.cwd, service.cmd)
    if loader is None:
        return None, (), service.env_files
    own = tuple(ref for ref in service.env_files if ref.explicit)
    taken = {ref.path for ref in own}
    refs = tuple(
        EnvFileRef(path, project.display_path(path), False, None)
        for path in (service.cwd / name for name in reversed(loader.files))
        if path not in taken
    )
    return loader, refs, own


def package_bin_dirs(root: Path, cwd: Path) -> list[Path]:
    """`<cwd>/node_modules/.bin` and each ancestor's up to `root`, nearest first: the
    directories npm, pnpm, yarn and bun put on PATH for a script. Only those that exist,
    so a Python service's PATH stays as it was."""
    chain = [cwd]
    if cwd.is_relative_to(root):
        chain += [parent for parent in cwd.parents if parent.is_relative_to(root)]
    bins = (directory / "node_modules" / ".bin" for directory in chain)
    return [directory for directory in bins if directory.is_dir()]


def _put_package_bins_on_path(project: Project, service: Service, env: ServiceEnv) -> None:
    """PATH as the package manager would give it: the bin directories, then the PATH the
    layers resolved (which the Variable keeps as the source it shadows)."""
    if admission(project, service).negated("PATH"):
        return
    dirs = package_bin_dirs(project.root, service.cwd)
    if not dirs:
        return
    current = env.variables.get("PATH")
    value = os.pathsep.join([*(str(d) for d in dirs), *([current.value] if current else [])])
    label = ", ".join(project.display_path(d) for d in dirs) + " (as npm/pnpm/bun run scripts)"
    if current is not None:
        label += f" + {current.source.label}"
    shadowed = (current.source, *current.shadowed) if current is not None else ()
    derived = current.source.derived if current is not None else ()
    env.variables["PATH"] = Variable(
        "PATH", value, Source("package-manager", label, value, derived=derived), shadowed
    )
    env.values["PATH"] = value


def _pwd_is_the_cwd(project: Project, service: Service, env: ServiceEnv) -> None:
    """turbo passes the shell's PWD and the package manager then sets it to the package
    folder; a process exec'd without a shell would otherwise see devstack's own cwd."""
    current = env.variables.get("PWD")
    if current is None or current.source.kind != "shell":
        return
    value = str(service.cwd)
    label = "the service's cwd (as npm/pnpm/bun run scripts)"
    source = Source("package-manager", label, value)
    env.variables["PWD"] = Variable("PWD", value, source, (current.source, *current.shadowed))
    env.values["PWD"] = value


def _line_of(location: Location) -> str:
    """`devstack.yaml:14`: provenance names a line; columns only clutter a table."""
    return str(Location(location.file, location.line))


def _problem_order(problem: Problem) -> tuple[int, Location]:
    return (0 if problem.severity == "error" else 1, problem.location or Location(""))


def _missing_file(ref: EnvFileRef) -> Problem:
    from devstack.core.examples import example_for

    hint = f"create {ref.display}, or remove it from env_files"
    example = example_for(ref.path)
    if example is not None:  # issue 12 item 5: the cp a new clone forgot
        shown = os.path.join(os.path.dirname(ref.display), example.name)
        hint = f"cp {shown} {ref.display}, then fill in its values"
    return Problem(
        f"env file {ref.display} does not exist", ref.location, hint, code="missing-env-file"
    )


class _ServiceResolver:
    """Builds one service's environment layer by layer, recording provenance."""

    def __init__(
        self,
        project: Project,
        service: Service,
        shell: Mapping[str, str],
        cli: Mapping[str, str],
        shell_sources: Mapping[str, Source],
    ) -> None:
        self.project = project
        self.service = service
        self.shell = shell
        self.shell_sources = shell_sources
        self.cli = cli
        self.admission = admission(project, service)
        self.candidates: dict[str, list[tuple[Source, bool]]] = {}
        self.context: dict[str, Source] = {}  # everything defined so far, for ${NAME}
        self.problems: list[Problem] = []

    def resolve(
        self,
        root_files: Iterable[EnvFile],
        own_files: Iterable[EnvFile],
        framework_files: Iterable[EnvFile] = (),
    ) -> ServiceEnv:
        admits, negated = self.admission.admits, self.admission.negated
        for env_file in root_files:
            self.add_file(env_file, "root-file", admits)
        for env_file in framework_files:
            self.add_file(env_file, "framework-file", lambda name: not negated(name))
        for env_file in own_files:
            self.add_file(env_file, "service-file", lambda name: not negated(name))
        for name, source in self.shell_sources.items():
            self.offer(name, source, admits(name))
        self.add_config_values()
        for name, value in self.cli.items():
            self.offer(name, Source("cli", "--env", value), True)
        return self.result()

    def add_file(self, env_file: EnvFile, kind: SourceKind, admits: Callable[[str], bool]) -> None:
        for entry in env_file.entries:
            source = Source(kind, str(entry.location), entry.value, entry.location)
            if entry.interpolate:
                source = self.interpolated(source, entry.name)
            self.offer(entry.name, source, admits(entry.name))

    def add_config_values(self) -> None:
        service, negated = self.service, self.admission.negated
        if service.port is not None:
            where = Location(self.project.display_path(self.project.config_path))
            label = f"{_line_of(service.location)} (port: {service.port})"
            self.offer("PORT", Source("port", label, str(service.port), where), True)
        for rule in (*self.project.env, *service.env):
            if rule.kind == "set" and rule.value is not None:
                source = Source("config", _line_of(rule.location), rule.value, rule.location)
                source = self.interpolated(source, rule.name)
                self.offer(rule.name, source, not negated(rule.name))

    def offer(self, name: str, source: Source, admitted: bool) -> None:
        self.candidates.setdefault(name, []).append((source, admitted))
        if source.kind != "shell":
            self.context[name] = source

    def lookup(self, name: str) -> str | None:
        if name in self.context:
            return self.context[name].value
        return self.shell.get(name)

    def interpolated(self, source: Source, owner: str) -> Source:
        """`source` with its value expanded, and a problem for each thing that went wrong."""
        raw, where = source.value, source.location
        if "$" not in raw:
            return source  # most values: nothing to expand
        try:
            expansion = interpolate(raw, self.lookup)
        except InvalidTemplate as error:
            secret = is_secret(owner, self.project.vars)  # the bad part could show it
            self.problems.append(_invalid_interpolation(error, owner, where, secret))
            return source
        secret = is_secret(owner, self.project.vars)
        for reference in expansion.undefined:
            self.problems.append(_undefined(reference, owner, where, self.known_names(), secret))
        for missing in expansion.missing:
            message = expand(missing.reference.word, self.shown_lookup).value
            self.problems.append(_missing(missing, message, owner, where))
        if not expansion.used:
            return dataclasses.replace(source, value=expansion.value)
        uses = tuple(
            Use(name, self.context.get(name) or self.shell_sources.get(name))
            for name in expansion.used
        )
        # Secrecy flows through interpolation: `OWNER=ops ${API_TOKEN}` holds a secret.
        derived = derived_from(
            ((use.name, use.source.value, use.source.derived) for use in uses if use.source),
            self.project.vars,
        )
        return dataclasses.replace(
            source, value=expansion.value, written=raw, uses=uses, derived=derived
        )

    def shown_lookup(self, name: str) -> str | None:
        """`lookup` as a message may show it: secrets masked, derived ones too."""
        source = self.context.get(name) or self.shell_sources.get(name)
        if source is None:
            return None
        return masked(name, source.value, self.project.vars, derived=source.derived)

    def known_names(self) -> set[str]:
        return set(self.context) | set(self.shell)

    def result(self) -> ServiceEnv:
        env = ServiceEnv(self.service.name)
        for name, offered in self.candidates.items():
            admitted = [source for source, ok in offered if ok]
            if admitted:
                winner, *lower = reversed(admitted)
                env.variables[name] = Variable(name, winner.value, winner, tuple(lower))
                env.values[name] = winner.value
            elif any(source.kind != "shell" for source, _ in offered):
                sources = tuple(source for source, _ in offered)
                env.dropped[name] = Dropped(name, sources, self.admission.reason_dropped(name))
        return env


# -- devstack's own variables: the layer only `up` adds ---------------------------------


@dataclass(frozen=True)
class OwnVariable:
    """A variable `up` gives every service it spawns (runtime/firstwave.spawn_env)."""

    name: str
    wins: bool  # over every layer (a run's marker), or below them all (a default)
    why: str
    when: str = ""  # the condition under which `up` sets it, if any


# In spawn_env's order; tests/unit/core/test_envresolve.py checks the two agree.
OWN_VARIABLES = (
    OwnVariable("PYTHONUNBUFFERED", False, "a Python service is silent through a pipe without it"),
    OwnVariable("PWD", False, "what a shell exports, for a command exec'd without one"),
    OwnVariable(
        "FORCE_COLOR",
        False,
        "tools print no colour into a pipe without it",
        "when `up` prints in colour",
    ),
    OwnVariable("DEVSTACK_RUN_ID", True, "the run's marker: every process of the run carries it"),
    OwnVariable("DEVSTACK_SERVICE", True, "the run's marker: the service a process belongs to"),
    OwnVariable("DEVSTACK_REPO", True, "the next `up` of this repo stops what carries it"),
)
RUN_ID_SHOWN = "(new for each run)"


def own_values(project: Project, service: Service) -> dict[str, str]:
    """The values of `OWN_VARIABLES` for `service` (the run id is not known before `up`)."""
    return {
        "PYTHONUNBUFFERED": "1",
        "PWD": str(service.cwd),
        "FORCE_COLOR": "1",
        "DEVSTACK_RUN_ID": RUN_ID_SHOWN,
        "DEVSTACK_SERVICE": service.name,
        "DEVSTACK_REPO": str(project.root),
    }


def own_variable(name: str) -> OwnVariable | None:
    return next((own for own in OWN_VARIABLES if own.name == name), None)


def as_spawned(project: Project, service_env: ServiceEnv) -> dict[str, Variable]:
    """The service's variables as `up` spawns it: the layers', with devstack's own on top
    (a marker) or below them all (a default), so `env` answers "why FORCE_COLOR=1?"."""
    variables = dict(service_env.variables)
    values = own_values(project, project.services[service_env.name])
    for own in OWN_VARIABLES:
        label = "set by devstack for every service" + (f", {own.when}" if own.when else "")
        source = Source("devstack", label, values[own.name])
        current = variables.get(own.name)
        if current is None:
            variables[own.name] = Variable(own.name, source.value, source)
        elif own.wins:
            shadowed = (current.source, *current.shadowed)
            variables[own.name] = Variable(own.name, source.value, source, shadowed)
        else:
            variables[own.name] = dataclasses.replace(current, shadowed=(*current.shadowed, source))
    return variables


# -- the problems an interpolation reports ----------------------------------------------

WHY_STRICTER = "unlike compose, devstack does not take an undefined name as empty"


def _undefined(
    reference: Reference, owner: str, where: Location | None, known: set[str], secret: bool
) -> Problem:
    name = reference.name
    if secret and not reference.braced:
        # In a secret, `pa$word` is more likely part of the value than a reference.
        return Problem(
            f"{owner} uses an undefined $NAME at character {reference.offset + 1}",
            where,
            "for a literal $ in a secret, write $$ or single-quote the value in the env file",
            code="undefined-variable",
        )
    hint = (
        f"define {name} in an env file or the shell, write ${{{name}:-default}}, "
        f"or ${{{name}-}} to allow it unset ({WHY_STRICTER})"
    )
    if not reference.braced:
        hint = f"for a literal $, write $$ (${reference}); or " + hint
    close = closest_names(name, known)
    if close:
        hint = f"did you mean {', '.join(close)}? Or " + hint
    return Problem(
        f"{owner} uses {reference}, which is not defined", where, hint, code="undefined-variable"
    )


def _missing(missing: Missing, message: str, owner: str, where: Location | None) -> Problem:
    name = missing.reference.name
    shown = dataclasses.replace(missing, message=message)  # secrets masked
    empty = " with a value that is not empty" if missing.reference.operator == ":?" else ""
    return Problem(
        f"{owner}: {shown}",
        where,
        f"define {name}{empty} in an env file or the shell",
        code="required-variable",
    )


def _invalid_interpolation(
    error: InvalidTemplate, owner: str, where: Location | None, secret: bool
) -> Problem:
    what = f"at character {error.offset + 1}" if secret else f"`{error.snippet}`"
    hint = (
        "write $$ for a literal $; interpolations are $NAME, ${NAME}, ${NAME:-default}, "
        "${NAME-default}, ${NAME:+alt}, ${NAME+alt}, ${NAME:?message}, ${NAME?message}"
    )
    if error.reason == UNCLOSED:
        hint = "in an env file, ` #` starts a comment unless the value is quoted; or " + hint
    return Problem(
        f"{owner}: invalid interpolation {what}: {error.reason}",
        where,
        hint,
        code="invalid-interpolation",
    )
