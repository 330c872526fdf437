"""A JS/TS monorepo (its workspace, turbo.json and scripts) as devstack.yaml text.

`plan_import` decides, `render` writes: one service per package that has the task's
script, plus one for each one-shot task turbo would run first; each generated line says
in a comment where it came from, and what could not be translated is listed at the end.
Pure: `devstack init` reads the files and writes the result.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from devstack.core.config import VAR_GLOB, VAR_NAME
from devstack.core.jsworkspace import Package, Workspace
from devstack.core.scripts import Script, parse_script
from devstack.core.turbo import Task, TurboConfig, task_for

_FILTER = re.compile(r"(?:--filter[= ]|-F[= ]?)['\"]?([^\s'\"]+)")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

Node = tuple[str, str]  # (package name, task)


@dataclass
class Line:
    """A YAML value and the comment that says where it came from."""

    value: str
    origin: str


@dataclass
class PlannedService:
    name: str
    package: str
    task: str
    cwd: str
    cmd: Line
    env: list[Line] = field(default_factory=list)
    env_files: list[Line] = field(default_factory=list)
    depends_on: list[tuple[str, str, str]] = field(default_factory=list)  # name, condition, why
    tty: Line | None = None
    ports: Line | None = None
    one_shot: bool = False
    main: bool = True  # runs the imported task: the service its package name stands for


@dataclass
class ImportPlan:
    task: str
    source: str  # "the pnpm workspace (pnpm-workspace.yaml) and turbo.json (turbo 2)"
    env_mode: Line
    env: list[Line] = field(default_factory=list)
    services: list[PlannedService] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)


def plan_import(workspace: Workspace, turbo: TurboConfig | None, task: str = "dev") -> ImportPlan:
    """What `turbo run <task>` would start in `workspace`, as devstack services."""
    source = f"the {workspace.manager} workspace ({workspace.patterns_source})"
    if turbo is not None:
        source += f" and turbo.json (turbo {turbo.major}.x, `{turbo.tasks_key}`)"
        mode = Line(turbo.env_mode, turbo.env_mode_origin)
    else:
        # Without turbo, the package manager passes the whole shell to every script.
        mode = Line("loose", f"no turbo.json: {workspace.manager} passes every variable")
    plan = ImportPlan(task=task, source=source, env_mode=mode)
    if turbo is not None:
        plan.env += _env_lines(turbo.global_env, "turbo.json globalEnv", plan)
        plan.env += _env_lines(
            turbo.global_pass_through_env, "turbo.json globalPassThroughEnv", plan
        )
        if turbo.global_dot_env:
            plan.untranslated.append(
                f"turbo.json globalDotEnv {list(turbo.global_dot_env)}: turbo 1.x only hashed "
                "these files, it never loaded them; devstack's root env_files are .env, .env.local"
            )
    _Planner(workspace, turbo, task, plan).run()
    plan.untranslated += _root_script_filters(workspace, plan)
    return plan


def _root_script_filters(workspace: Workspace, plan: ImportPlan) -> list[str]:
    """`"dev": "turbo run dev --filter=@documenso/remix"` at the root: `npm run dev` starts
    fewer packages than `turbo run dev`; say which `devstack up` does the same."""
    script = workspace.root_package.scripts.get(plan.task, "")
    filters = _FILTER.findall(script) if "turbo" in script else []
    if not filters:
        return []
    by_package = {s.package: s.name for s in plan.services if s.task == plan.task}
    names = [by_package[f] for f in filters if f in by_package]
    if len(names) != len(filters):
        return [f"package.json scripts.{plan.task} filters with {filters}: not translated"]
    return [
        f"package.json scripts.{plan.task} (`{script}`) starts only {', '.join(filters)}: "
        f"`devstack up {' '.join(names)}` does the same; `devstack up` starts them all"
    ]


class _Planner:
    def __init__(
        self, workspace: Workspace, turbo: TurboConfig | None, task: str, plan: ImportPlan
    ) -> None:
        self.workspace = workspace
        self.turbo = turbo
        self.task = task
        self.plan = plan
        # `//` is turbo's name for the root package (`//#env-check` in cal.com's turbo.json)
        root = dataclasses.replace(workspace.root_package, name="//")
        self.by_name = {**workspace.by_name(), "//": root}
        self.names = {**service_names(list(workspace.packages)), "//": "root"}
        self.services: dict[Node, PlannedService] = {}

    def run(self) -> None:
        roots = [p for p in self.workspace.packages if self.task in p.scripts]
        first = (roots[0].name, self.task) if roots else None
        if first and self.turbo is not None and self._settings(first) is None:
            self.plan.untranslated.append(
                f"turbo.json defines no `{self.task}` task: turbo would refuse to run it; "
                "the scripts are imported without dependencies"
            )
        for package in roots:
            self._add((package.name, self.task))
        self.plan.services = list(self.services.values())

    def _add(self, node: Node) -> PlannedService:
        if node in self.services:
            return self.services[node]
        package, task = self.by_name[node[0]], node[1]
        settings = self._settings(node)
        script = parse_script(package.scripts[task], package.scripts)
        service = self._service(package, task, script, settings)
        self.services[node] = service
        for dependency, why in self._dependencies(package, task, settings):
            needed = self._add(dependency)
            condition = "completed" if needed.one_shot else "started"
            if not needed.one_shot:
                why += "; turbo refuses a persistent dependency, devstack waits for it to start"
            if needed.name not in (d[0] for d in service.depends_on):
                service.depends_on.append((needed.name, condition, why))
        return service

    def _service(
        self, package: Package, task: str, script: Script, settings: Task | None
    ) -> PlannedService:
        name = self.names[package.name] if task == self.task else self._task_name(package, task)
        where = f"{package.directory}/package.json scripts.{task}"
        cmd_origin = where + (": " + "; ".join(script.notes) if script.notes else "")
        service = PlannedService(
            name=name,
            package=package.name,
            task=task,
            cwd=package.directory,
            cmd=Line(script.command, cmd_origin),
            # a task turbo.json does not define runs with turbo's defaults: not persistent
            one_shot=not settings.persistent if settings is not None else task != self.task,
            main=task == self.task,
        )
        service.env_files = [Line(f, f"dotenv wrapper in {where}") for f in script.env_files]
        if script.ports:
            ports = ", ".join(map(str, script.ports))
            service.ports = Line(ports, f"listens on {ports} ({where}); doctor and up check it")
        for item in script.untranslated:
            self.plan.untranslated.append(f"{where}: {item}")
        if settings is not None:
            self._take_settings(service, settings)
        return service

    def _take_settings(self, service: PlannedService, settings: Task) -> None:
        """A task's env lists and `interactive`; what cannot be said goes on the list."""
        if settings.env:
            service.env += _env_lines(settings.env, settings.origin["env"], self.plan)
        if settings.pass_through_env:
            origin = settings.origin["pass_through_env"]
            service.env += _env_lines(settings.pass_through_env, origin, self.plan)
        if settings.interactive:
            service.tty = Line("true", settings.origin["interactive"])
        for key in settings.unread:
            if (item := f"{key}: not translated") not in self.plan.untranslated:
                self.plan.untranslated.append(item)
        if settings.dot_env:
            self.plan.untranslated.append(
                f"{settings.origin['dot_env']} {list(settings.dot_env)}: turbo 1.x only "
                "hashed these files; list them in the service's env_files if it reads them"
            )

    def _settings(self, node: Node) -> Task | None:
        if self.turbo is None:
            return None
        return task_for(self.turbo, node[0], self.by_name[node[0]].directory, node[1])

    def _task_name(self, package: Package, task: str) -> str:
        """`database-build` for @formbricks/database#build, unless a package took it."""
        taken = set(self.names.values()) | {s.name for s in self.services.values()}
        base = name = f"{self.names[package.name]}-{_safe(task)}"
        number = 2
        while name in taken:
            name, number = f"{base}-{number}", number + 1
        return name

    def _dependencies(
        self, package: Package, task: str, settings: Task | None
    ) -> list[tuple[Node, str]]:
        """The tasks turbo runs before `task` in `package`; tasks without a script are
        no-ops turbo still walks through, so their own dependencies count."""
        if settings is None:
            return []
        found: list[tuple[Node, str]] = []
        for item in settings.depends_on:
            why = f"{settings.origin['depends_on']}: {item}"
            for target in self._targets(package, item):
                found += self._through_noops(target, why, set())
        return found

    def _targets(self, package: Package, item: str) -> list[Node]:
        if item.startswith("$"):  # turbo 1.x's env dependency: `$NAME`
            self.plan.untranslated.append(f"dependsOn {item}: list {item[1:]} under env")
            return []
        if item.startswith("^"):
            deps = self.workspace.internal_dependencies(package)
            return [(dep.name, item[1:]) for dep in deps]
        if "#" in item:
            owner, task = item.rsplit("#", 1)
            known = owner in self.by_name and (
                task in self.by_name[owner].scripts or self._settings((owner, task)) is not None
            )
            if not known:
                self.plan.untranslated.append(f"dependsOn {item}: no such task or script")
                return []
            return [(owner, task)]
        return [(package.name, item)]

    def _through_noops(self, node: Node, why: str, seen: set[Node]) -> list[tuple[Node, str]]:
        if node in seen:
            return []
        seen.add(node)
        package = self.by_name[node[0]]
        if node[1] in package.scripts:
            return [(node, why)]
        found: list[tuple[Node, str]] = []
        for dependency, _ in self._dependencies(package, node[1], self._settings(node)):
            found += self._through_noops(dependency, why, seen)
        return found


def _env_lines(names: tuple[str, ...], origin: str, plan: ImportPlan) -> list[Line]:
    """Env list items devstack reads as turbo does (`NAME`, `PREFIX_*`, `!NAME`); anything
    else (turbo's escaped `\\*`) is listed as not translated."""
    lines = []
    for name in names:
        bare = name.removeprefix("!")
        if VAR_NAME.match(bare) or VAR_GLOB.match(bare):
            lines.append(Line(name, origin))
        else:
            plan.untranslated.append(f"{origin}: {name!r} is not a name or NAME_* pattern")
    return lines


def service_names(packages: list[Package]) -> dict[str, str]:
    """Short service names: `@v1/jobs` -> `jobs`; `@a/api` and `@b/api` -> `a-api`, `b-api`."""
    short = {p.name: _safe(p.name.rsplit("/", 1)[-1]) for p in packages}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    names: dict[str, str] = {}
    taken: set[str] = set()
    for package in packages:
        name = short[package.name]
        if counts[name] > 1:
            name = _safe(package.name.lstrip("@").replace("/", "-"))
        base, number = name, 2
        while name in taken:
            name, number = f"{base}-{number}", number + 1
        taken.add(name)
        names[package.name] = name
    return names


def _safe(text: str) -> str:
    name = _UNSAFE_NAME.sub("-", text).strip("-._")
    return name or "package"


# -- rendering -------------------------------------------------------------------------


def render(plan: ImportPlan, *, command: str = "devstack init") -> str:
    """The devstack.yaml text, every generated line with a comment saying where it came from."""
    out = [
        f"# devstack.yaml, imported from {plan.source} by `{command}`.",
        f"# One service per package with a `{plan.task}` script, as `turbo run {plan.task}` would"
        " start them;",
        "# `package:` keeps each package's name, so both can be typed.",
        f"env_mode: {plan.env_mode.value}  # {plan.env_mode.origin}",
    ]
    if plan.env:
        out.append("env:")
        out += [f"  - {_scalar(line.value)}  # {line.origin}" for line in plan.env]
    out.append("services:")
    for service in plan.services:
        out += _service_lines(service)
    if plan.untranslated:
        out += ["", "# Not translated (devstack init could not say it in devstack.yaml):"]
        out += [f"#   - {_one_line(item)}" for item in plan.untranslated]
    return "\n".join(out) + "\n"


def _one_line(text: str) -> str:
    """A comment stays one line whatever a script holds."""
    return " ".join(text.split())


def _service_lines(service: PlannedService) -> list[str]:
    what = f"turbo task {service.package}#{service.task}"
    lines = [f"  {service.name}:  # {what}" + (", one-shot" if service.one_shot else "")]
    manifest = f"{service.cwd}/package.json"
    # `package:` names the service a package name stands for (`devstack up @v1/web`): the
    # one running the imported task, never its build steps nor the root's (turbo's `//`)
    if service.main and service.package != "//":
        lines.append(f"    package: {_scalar(service.package)}  # {manifest} name")
    lines.append(f"    cwd: {_scalar(service.cwd)}  # the folder of {manifest}")
    lines.append(f"    cmd: {_scalar(service.cmd.value)}  # {_one_line(service.cmd.origin)}")
    if service.ports:
        lines.append(f"    # {service.ports.origin}")
    if service.env:
        lines.append("    env:")
        lines += [f"      - {_scalar(line.value)}  # {line.origin}" for line in service.env]
    if service.env_files:
        lines.append("    env_files:")
        lines += [f"      - {_scalar(line.value)}  # {line.origin}" for line in service.env_files]
    if service.depends_on:
        lines.append("    depends_on:")
        for name, condition, why in service.depends_on:
            lines.append(f"      {_scalar(name)}: {{condition: {condition}}}  # {_one_line(why)}")
    if service.tty:
        lines.append(f"    tty: true  # {service.tty.origin}")
    return lines


def _scalar(value: str) -> str:
    """A YAML scalar: plain when YAML reads it back as the same string (and no comment
    could start in it), else double-quoted."""
    import yaml

    if value and "#" not in value and "\n" not in value and value == value.strip():
        try:
            if yaml.safe_load(f"key: {value}") == {"key": value}:
                return value
        except yaml.YAMLError:
            pass
    # PyYAML's own double-quoted style escapes what JSON cannot say in YAML (U+0085, U+2028,
    # characters beyond the BMP); a huge width keeps it on one line
    return yaml.safe_dump(value, default_style='"', width=2**31).rstrip("\n")
