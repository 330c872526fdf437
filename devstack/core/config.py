"""devstack.yaml text -> `Project`, with file:line on every problem.

Finds the file (walking up like git), parses it, checks every key and type, and
reports all problems of the file together. Reads no other file: whether env
files, commands and directories exist is for `doctor`.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import cast

import yaml

from devstack.core.errors import DevstackError, Location, Problem, did_you_mean
from devstack.core.graph import find_cycle
from devstack.core.model import (
    DEFAULT_ENV_FILES,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_PROBE_TIMEOUT,
    Dependency,
    EnvFileRef,
    EnvRule,
    ProbeKind,
    Project,
    ReadyProbe,
    Service,
    VarDecl,
    WatchSpec,
)
from devstack.core.textfile import read_text
from devstack.core.yamlnodes import NodeReader, compose, describe

CONFIG_NAME = "devstack.yaml"
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
VAR_GLOB = re.compile(r"[A-Za-z0-9_*?\[\]]+\Z")
SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

TOP_KEYS = ("env_mode", "env", "env_files", "vars", "image", "services")
SERVICE_KEYS = (
    "cmd",
    "cwd",
    "env",
    "env_files",
    "depends_on",
    "ready",
    "port",
    "restart",
    "max_restarts",
    "stop_signal",
    "stop_timeout",
    "autostart",
    "tty",
    "watch",
    "restart_dependents",
    "package",
    "image",
)
VAR_KEYS = ("required", "secret", "same_across", "pattern", "description")
PROBE_KINDS = ("http", "tcp", "log", "cmd")
WATCH_KEYS = ("paths", "ignore", "debounce_ms")
CONDITIONS = ("started", "ready", "completed")
COMPOSE_CONDITIONS = {
    "service_started": "started",
    "service_healthy": "ready",
    "service_completed_successfully": "completed",
}
RESTART_MODES = ("no", "on-failure", "always")


def find_config(start: Path) -> Path:
    """The nearest devstack.yaml in `start` or a parent directory."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file() or candidate.is_symlink():  # a broken link: say so when read
            return candidate
    raise DevstackError.single(
        f"no {CONFIG_NAME} in {start} or any parent directory",
        hint=f"run devstack from inside your repo, pass -f path/to/{CONFIG_NAME}, or create"
        " one with `devstack init` (from a Procfile if the repo has one)",
        code="no-config",
    )


def load_project(config_path: Path) -> Project:
    text = read_text(config_path, str(config_path))
    if text is None:
        raise DevstackError.single(
            f"{config_path} does not exist", hint="check the path given to -f", code="no-config"
        )
    return parse_project(text, config_path.resolve())


def parse_project(text: str, config_path: Path) -> Project:
    """Parse devstack.yaml text; raise one DevstackError listing every problem."""
    root = config_path.parent
    display = os.path.relpath(config_path, root)
    document = compose(text, display)
    reader = NodeReader(display)
    if document is None:
        raise DevstackError.single(
            f"{display} is empty", Location(display), "add a 'services:' mapping (see README)"
        )
    # A tree that cannot be walked (a recursive alias, an alias bomb) is not read further.
    project = (
        _ProjectReader(reader, root, config_path).read(document) if reader.check(document) else None
    )
    if reader.problems or project is None:
        raise DevstackError(sorted(reader.problems, key=lambda p: p.location or Location("")))
    return project


class _ProjectReader:
    """Walks the document once; one method per section of the file."""

    def __init__(self, reader: NodeReader, root: Path, config_path: Path) -> None:
        self.r = reader
        self.root = root
        self.config_path = config_path

    def read(self, document: yaml.Node) -> Project:
        if not isinstance(document, yaml.MappingNode):
            self.r.wrong_type(document, CONFIG_NAME, "a mapping", "services: {api: {cmd: ...}}")
            return Project(self.root, self.config_path, {})
        items = _without_extensions(self.r.items(document, CONFIG_NAME))
        self.check_top_keys(items)
        sections = {key: value for key, _, value in items}
        env_mode = "strict"
        if "env_mode" in sections:
            node = sections["env_mode"]
            value = self.r.value(node)
            if value not in ("strict", "loose"):
                self.r.error(node, "env_mode must be 'strict' or 'loose'")
            else:
                env_mode = value
        services = self.services(sections.get("services"))
        project = Project(
            root=self.root,
            config_path=self.config_path,
            services=services,
            env_mode=env_mode,  # type: ignore[arg-type]
            env=self.env_rules(sections["env"], "env") if "env" in sections else (),
            env_files=self.env_files(sections.get("env_files"), self.root),
            vars=self.var_decls(sections.get("vars"), services),
            image=self.image(sections.get("image"), "image"),
        )
        self.check_dependencies(project)
        return project

    def check_top_keys(self, items: list[tuple[str, yaml.Node, yaml.Node]]) -> None:
        """Unknown top-level keys; `web: gunicorn app` lines are a pasted Procfile."""
        unknown = [(key, node, value) for key, node, value in items if key not in TOP_KEYS]
        procfile_like = [key for key, _, value in unknown if isinstance(self.r.value(value), str)]
        if (
            unknown
            and len(procfile_like) == len(unknown)
            and "services" not in {key for key, _, _ in items}
        ):
            for key, node, _ in unknown:
                self.r.error(
                    node,
                    f"'{key}: ...' looks like a Procfile line, not devstack.yaml",
                    "put it in a file named Procfile and run `devstack init`, or write"
                    f" services: {{{key}: {{cmd: ...}}}}",
                    code="unknown-key",
                )
            return
        self.r.check_keys(items, TOP_KEYS, CONFIG_NAME)

    # -- env -------------------------------------------------------------------

    def env_rules(self, node: yaml.Node, what: str) -> tuple[EnvRule, ...]:
        if isinstance(node, yaml.SequenceNode):
            rules = [self.env_item(item, what) for item in node.value]
        elif isinstance(node, yaml.MappingNode):
            rules = [
                self.env_entry(key, key_node, value)
                for key, key_node, value in self.r.items(node, what)
            ]
        else:
            self.r.wrong_type(node, what, "a list or a mapping", '[DATABASE_URL, "PORT=8000"]')
            return ()
        return tuple(rule for rule in rules if rule is not None)

    def env_item(self, node: yaml.Node, what: str) -> EnvRule | None:
        text = self.r.string(
            node, f"each item of {what}", '"NAME", "NAME=value", "PREFIX_*" or "!NAME"'
        )
        if text is None:
            return None
        where = self.r.where(node)
        if "=" in text:
            name, value = text.split("=", 1)
            if name != name.rstrip():
                fixed = f"{name.strip()}={value.strip()}"
                self.r.error(
                    node,
                    f"'{text}' has spaces around '=': the name would be '{name}'",
                    f'write "{fixed}" (spaces are kept as part of the name and the value)',
                    code="invalid-name",
                )
                return None
            return self.rule("set", name, node, where, value)
        if text.startswith("!"):
            return self.rule("negate", text[1:], node, where)
        return self.rule("glob" if any(c in text for c in "*?[") else "pass", text, node, where)

    def env_entry(self, name: str, key_node: yaml.Node, node: yaml.Node) -> EnvRule | None:
        where = self.r.where(key_node)
        if self.r.is_null(node):
            if name.startswith("!"):
                return self.rule("negate", name[1:], key_node, where)
            return self.rule(
                "glob" if any(c in name for c in "*?[") else "pass", name, key_node, where
            )
        value = self.r.text(node)
        if value is None:
            self.r.wrong_type(node, f"the value of {name}", "a string, a number or null")
            return None
        return self.rule("set", name, key_node, where, value)

    def rule(
        self, kind: str, name: str, node: yaml.Node, where: Location, value: str | None = None
    ) -> EnvRule | None:
        pattern = VAR_GLOB if kind in ("glob", "negate") else VAR_NAME
        if not pattern.match(name):
            self.r.error(
                node,
                f"'{name}' is not a valid variable name",
                "names are letters, digits and _, not starting with a digit",
                code="invalid-name",
            )
            return None
        return EnvRule(kind, name, where, value)  # type: ignore[arg-type]

    def env_files(self, node: yaml.Node | None, base: Path) -> tuple[EnvFileRef, ...]:
        if node is None:
            return tuple(
                EnvFileRef(base / name, self.display(base / name), False, None)
                for name in DEFAULT_ENV_FILES
            )
        names = self.r.strings(node, "env_files", "[.env, .env.local]")
        where = self.r.where(node)
        paths = [base / os.path.expanduser(name) for name in names]
        return tuple(EnvFileRef(path, self.display(path), True, where) for path in paths)

    def display(self, path: Path) -> str:
        path = Path(os.path.normpath(path))
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    # -- vars ------------------------------------------------------------------

    def var_decls(self, node: yaml.Node | None, services: dict[str, Service]) -> dict[str, VarDecl]:
        if node is None:
            return {}
        decls = {}
        for name, key_node, value in self.r.items(node, "vars"):
            if not VAR_NAME.match(name):
                self.r.error(
                    key_node, f"'{name}' is not a valid variable name", code="invalid-name"
                )
                continue
            decls[name] = self.var_decl(name, key_node, value, services)
        return decls

    def var_decl(
        self, name: str, key_node: yaml.Node, node: yaml.Node, services: dict[str, Service]
    ) -> VarDecl:
        where = self.r.where(key_node)
        if self.r.is_null(node):
            return VarDecl(name, where)
        items = self.r.items(node, f"vars.{name}")
        self.r.check_keys(items, VAR_KEYS, f"vars.{name}")
        fields: dict[str, object] = {}
        for key, _, value in items:
            if key in ("required", "secret"):
                fields[key] = self.r.boolean(value, f"vars.{name}.{key}") or False
            elif key in ("pattern", "description"):
                fields[key] = self.r.string(value, f"vars.{name}.{key}")
                if key == "pattern" and fields[key]:
                    self.check_regex(value, str(fields[key]), f"vars.{name}.pattern")
            elif key == "same_across":
                fields[key] = self.same_across(value, name, services)
        return VarDecl(name, where, **fields)  # type: ignore[arg-type]

    def same_across(
        self, node: yaml.Node, name: str, services: dict[str, Service]
    ) -> tuple[str, ...]:
        if isinstance(node, yaml.ScalarNode) and self.r.value(node) == "all":
            return ()
        names = self.r.strings(node, f"vars.{name}.same_across", "all, or [api, jobs]")
        for service in names:
            if service not in services:
                self.r.error(
                    node,
                    f"unknown service '{service}' in vars.{name}.same_across",
                    did_you_mean(service, services),
                    code="unknown-service",
                )
        return tuple(names)

    def check_regex(self, node: yaml.Node, pattern: str, what: str) -> None:
        try:
            re.compile(pattern)
        except re.error as error:
            self.r.error(node, f"{what} is not a valid regular expression: {error}")

    # -- services ----------------------------------------------------------------

    def services(self, node: yaml.Node | None) -> dict[str, Service]:
        if node is None:
            self.r.problems.append(
                Problem(
                    f"{CONFIG_NAME} has no 'services:' section",
                    Location(self.r.display_file),
                    "add services:, each with at least a cmd",
                    code="no-services",
                )
            )
            return {}
        services = {}
        for name, key_node, value in self.r.items(node, "services"):
            if not SERVICE_NAME.match(name):
                self.r.error(
                    key_node,
                    f"'{name}' is not a valid service name",
                    "use letters, digits, '-', '_' and '.'",
                )
                continue
            service = self.service(name, key_node, value)
            if service is not None:
                services[name] = service
        return services

    def service(self, name: str, key_node: yaml.Node, node: yaml.Node) -> Service | None:
        what = f"services.{name}"
        items = _without_extensions(self.r.items(node, what))
        self.r.check_keys(items, SERVICE_KEYS, what)
        keys = {key: value for key, _, value in items}
        if "cmd" not in keys:
            self.r.error(
                key_node, f"service '{name}' has no cmd", "add cmd: the command that runs it"
            )
            return None
        cmd = self.command(keys["cmd"], f"{what}.cmd")
        cwd = self.root
        if "cwd" in keys and (text := self.path(keys["cwd"], f"{what}.cwd", "services/api")):
            cwd = Path(os.path.normpath(self.root / text))
        fields: dict[str, object] = {}
        readers = {
            "env": lambda v: self.env_rules(v, f"{what}.env"),
            "depends_on": lambda v: self.dependencies(v, what),
            "ready": lambda v: self.probe(v, what),
            "port": lambda v: self.port(v, what),
            "restart": lambda v: self.restart(v, what),
            "max_restarts": lambda v: self.r.number(v, f"{what}.max_restarts", integer=True),
            "stop_signal": lambda v: self.stop_signal(v, what),
            "stop_timeout": lambda v: self.r.number(v, f"{what}.stop_timeout"),
            "autostart": lambda v: self.r.boolean(v, f"{what}.autostart"),
            "tty": lambda v: self.r.boolean(v, f"{what}.tty"),
            "restart_dependents": lambda v: self.r.boolean(v, f"{what}.restart_dependents"),
            "watch": lambda v: self.watch(v, what),
            "package": lambda v: self.r.string(v, f"{what}.package", '"@v1/jobs"') or None,
            "image": lambda v: self.image(v, f"{what}.image"),
        }
        for key, read in readers.items():
            if key in keys and (value := read(keys[key])) is not None:
                fields[key] = value
        fields["env_files"] = self.env_files(keys.get("env_files"), cwd)
        if "watch" in fields:
            self.check_watch(fields["watch"], cwd, keys["watch"], what)  # type: ignore[arg-type]
        if cmd is None:
            return None
        return Service(name=name, cmd=cmd, cwd=cwd, location=self.r.where(key_node), **fields)  # type: ignore[arg-type]

    def path(self, node: yaml.Node, what: str, example: str) -> str | None:
        """A path as written, `~` expanded (as a shell would); backslashes are refused."""
        text = self.r.string(node, what, example)
        if text is None:
            return None
        if "\\" in text:
            self.r.error(
                node,
                f"{what} '{text}' uses backslashes",
                f"write paths with '/', also on Windows: {text.replace(chr(92), '/')}",
            )
            return None
        return os.path.expanduser(text)

    def image(self, node: yaml.Node | None, what: str) -> str | None:
        """The container image `devstack export compose|kubernetes` runs a service in."""
        return None if node is None else self.r.string(node, what, "node:22-slim")

    def command(self, node: yaml.Node, what: str) -> str | tuple[str, ...] | None:
        if isinstance(node, yaml.SequenceNode):
            argv = self.r.strings(node, what, '["python", "-m", "api"]')
            if not argv:
                self.r.error(node, f"{what} is an empty list")
                return None
            if any(not self.spawnable(node, what, arg) for arg in argv):
                return None
            return tuple(argv)
        text = self.r.string(node, what, '"python -m api" or ["python", "-m", "api"]')
        if text is not None and not text.strip():
            self.r.error(node, f"{what} is blank")
            return None
        if text is not None and not self.spawnable(node, what, text):
            return None
        return text

    def spawnable(self, node: yaml.Node, what: str, text: str) -> bool:
        """Whether `text` can be an argument of a process (no NUL, encodable)."""
        problem = unspawnable(text)
        if problem:
            self.r.error(node, f"{what} {problem}", "remove it from the command")
        return problem is None

    def dependencies(self, node: yaml.Node, what: str) -> tuple[Dependency, ...]:
        if isinstance(node, yaml.MappingNode):
            found = []
            for name, key_node, value in self.r.items(node, f"{what}.depends_on"):
                condition = "ready"
                if isinstance(value, yaml.ScalarNode) and not self.r.is_null(value):
                    condition = self.condition(value)  # compose's `db: service_healthy`
                elif not self.r.is_null(value):
                    items = self.r.items(value, f"{what}.depends_on.{name}")
                    self.r.check_keys(items, ("condition",), f"{what}.depends_on.{name}")
                    for _, _, condition_node in items:
                        condition = self.condition(condition_node)
                found.append(Dependency(name, condition, self.r.where(key_node)))  # type: ignore[arg-type]
            return tuple(found)
        names = self.r.strings(node, f"{what}.depends_on", "[jobs] or {jobs: {condition: ready}}")
        return tuple(Dependency(name, "ready", self.r.where(node)) for name in names)

    def condition(self, node: yaml.Node) -> str:
        """started, ready or completed; compose's service_* names are accepted too."""
        value = self.r.value(node)
        condition = COMPOSE_CONDITIONS.get(str(value), value) if isinstance(value, str) else None
        if condition in CONDITIONS:
            return str(condition)
        written = value if isinstance(value, str) else describe(node)
        self.r.error(
            node,
            f"condition must be one of {', '.join(CONDITIONS)}, not {written}",
            did_you_mean(written, [*CONDITIONS, *COMPOSE_CONDITIONS]),
        )
        return "ready"

    def probe(self, node: yaml.Node, what: str) -> ReadyProbe | None:
        items = self.r.items(node, f"{what}.ready")
        self.r.check_keys(items, (*PROBE_KINDS, "timeout", "interval"), f"{what}.ready")
        keys = {key: value for key, _, value in items}
        kinds = [kind for kind in PROBE_KINDS if kind in keys]
        if len(kinds) != 1:
            self.r.error(
                node,
                f"{what}.ready needs exactly one of {', '.join(PROBE_KINDS)}",
                'for example: ready: {log: "Local worker ready"}',
            )
            return None
        kind = kinds[0]
        target = self.r.string(keys[kind], f"{what}.ready.{kind}")
        if target is None:
            return None
        if kind == "log":
            self.check_regex(keys[kind], target, f"{what}.ready.log")
        elif "${" in target:
            pass  # checked by doctor once interpolated with the service's env
        elif kind == "tcp" and not re.fullmatch(r"\[?[\w.:-]+\]?:\d+", target):
            self.r.error(
                keys[kind], f"{what}.ready.tcp must be host:port", "for example: 127.0.0.1:5432"
            )
        elif kind == "http" and not target.startswith(("http://", "https://")):
            self.r.error(keys[kind], f"{what}.ready.http must be a http:// or https:// URL")
        timeout = (
            self.r.number(keys["timeout"], f"{what}.ready.timeout") if "timeout" in keys else None
        )
        interval = (
            self.r.number(keys["interval"], f"{what}.ready.interval")
            if "interval" in keys
            else None
        )
        return ReadyProbe(
            cast(ProbeKind, kind),
            target,
            self.r.where(node),
            timeout=DEFAULT_PROBE_TIMEOUT if timeout is None else timeout,
            interval=DEFAULT_PROBE_INTERVAL if interval is None else max(interval, 0.01),
        )

    def port(self, node: yaml.Node, what: str) -> int | None:
        port = self.r.number(node, f"{what}.port", integer=True, minimum=1)
        if port is not None and port > 65535:
            self.r.error(node, f"{what}.port must be at most 65535, not {port}")
            return None
        return int(port) if port is not None else None

    def restart(self, node: yaml.Node, what: str) -> str | None:
        value = self.r.value(node)
        if value is False:  # YAML 1.1 reads a bare `no` as false
            return "no"
        if not isinstance(value, str) or value not in RESTART_MODES:
            self.r.error(
                node,
                f"{what}.restart must be one of {', '.join(RESTART_MODES)}",
                did_you_mean(value, RESTART_MODES) if isinstance(value, str) else None,
            )
            return None
        return value

    def stop_signal(self, node: yaml.Node, what: str) -> signal.Signals | None:
        value = self.r.value(node) if isinstance(node, yaml.ScalarNode) else None
        names = [s.name for s in signal.Signals]
        name = str(value).upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return signal.Signals(value)
            except ValueError:
                pass
        elif isinstance(value, str) and name in names:
            return signal.Signals[name]
        self.r.error(
            node,
            f"{what}.stop_signal {value!r} is not a signal",
            did_you_mean(name, names) or "for example: SIGINT",
        )
        return None

    def watch(self, node: yaml.Node, what: str) -> WatchSpec | None:
        where = self.r.where(node)
        if not isinstance(node, yaml.MappingNode):
            paths = self.r.strings(node, f"{what}.watch", "[tasks/**/*.py, worker/]")
            return WatchSpec(tuple(paths), where) if paths else None
        items = self.r.items(node, f"{what}.watch")
        self.r.check_keys(items, WATCH_KEYS, f"{what}.watch")
        keys = {key: value for key, _, value in items}
        if "paths" not in keys:
            self.r.error(node, f"{what}.watch needs paths", "for example: paths: [tasks/]")
            return None
        debounce = (
            self.r.number(keys["debounce_ms"], f"{what}.watch.debounce_ms", integer=True)
            if "debounce_ms" in keys
            else None
        )
        return WatchSpec(
            tuple(self.r.strings(keys["paths"], f"{what}.watch.paths")),
            where,
            ignore=tuple(self.r.strings(keys["ignore"], f"{what}.watch.ignore"))
            if "ignore" in keys
            else (),
            debounce_ms=50 if debounce is None else int(debounce),
        )

    def check_watch(self, spec: WatchSpec, cwd: Path, node: yaml.Node, what: str) -> None:
        """Watch globs are relative to cwd and inside the repo: the watcher sees only the
        repo, so an absolute or `../..` path would be accepted and never fire."""
        for pattern in spec.paths:
            if os.path.isabs(pattern) or pattern.startswith("~"):
                self.r.error(
                    node,
                    f"{what}.watch path '{pattern}' is absolute",
                    "write it relative to the service's cwd, e.g. src/**/*.py",
                )
                continue
            target = Path(os.path.normpath(cwd / pattern))
            if target != self.root and self.root not in target.parents:
                self.r.error(
                    node,
                    f"{what}.watch path '{pattern}' is outside the repo",
                    "devstack watches only files inside the repo; watch a path inside it",
                )

    def check_dependencies(self, project: Project) -> None:
        for service in project.services.values():
            for dep in service.depends_on:
                if dep.name == service.name:
                    self.r.problems.append(
                        Problem(f"service '{service.name}' depends on itself", dep.location)
                    )
                elif dep.name not in project.services:
                    self.r.problems.append(
                        Problem(
                            f"service '{service.name}' depends on unknown service '{dep.name}'",
                            dep.location,
                            did_you_mean(dep.name, project.services),
                            code="unknown-service",
                        )
                    )
        edges = {name: service.dependency_names for name, service in project.services.items()}
        cycle = find_cycle(edges)
        if cycle and len(cycle) > 2:
            first = project.services[cycle[0]]
            self.r.problems.append(
                Problem(
                    f"dependency cycle: {' -> '.join(cycle)}",
                    first.location,
                    "remove one of these depends_on entries",
                    code="cycle",
                )
            )


def _without_extensions(
    items: list[tuple[str, yaml.Node, yaml.Node]],
) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """Drop `x-*` keys: as in compose, they hold anchors for `<<: *name` and are ignored."""
    return [item for item in items if not item[0].startswith("x-")]


def unspawnable(text: str) -> str | None:
    """Why `text` cannot be an argument or environment value of a process, or None.

    A NUL byte ends a C string and a lone surrogate has no bytes: exec would fail
    after doctor passed (issue 11), so both are caught where they are written."""
    if "\0" in text:
        return "contains a NUL byte"
    try:
        os.fsencode(text)
    except UnicodeEncodeError as error:
        return f"contains U+{ord(text[error.start]):04X}, which cannot be encoded"
    return None
