"""turbo.json as devstack needs it: env mode, env lists and each package's task settings.

Reads the root turbo.json and the package-level ones (JSONC, parsed by json5), for
turbo 1.x (`pipeline`) and 2.x (`tasks`). `task_for` answers "what does turbo run for
task T in package P" the way turbo does: the root's `P#T` if there is one, else its `T`,
then the package's own turbo.json (`extends: ["//"]`) key by key on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from devstack.core.errors import Location, Problem

TURBO_JSON = "turbo.json"
# Task keys that only concern turbo's cache and logs: not a dev server's business. Any
# other key `_FIELDS` does not read is reported as not translated.
_CACHE_KEYS = frozenset({"outputs", "inputs", "cache", "outputLogs", "outputMode"})


@dataclass(frozen=True)
class Task:
    """One task's settings, each with the place it was read (for the generated comments)."""

    depends_on: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    pass_through_env: tuple[str, ...] = ()
    persistent: bool = False
    interactive: bool = False
    dot_env: tuple[str, ...] = ()  # turbo 1.x: hashed only, never loaded
    unread: tuple[str, ...] = ()  # keys devstack does not translate, as "file tasks.dev.with"
    origin: Mapping[str, str] = field(default_factory=dict)  # key -> "turbo.json tasks.dev"


@dataclass(frozen=True)
class TurboConfig:
    major: Literal[1, 2]
    tasks_key: str  # "pipeline" (1.x) or "tasks" (2.x)
    env_mode: Literal["strict", "loose"]
    env_mode_origin: str
    global_env: tuple[str, ...] = ()
    global_pass_through_env: tuple[str, ...] = ()
    global_dot_env: tuple[str, ...] = ()
    tasks: Mapping[str, Task] = field(default_factory=dict)  # root: "dev", "@v1/web#dev"
    package_tasks: Mapping[str, Mapping[str, Task]] = field(default_factory=dict)  # by dir
    problems: list[Problem] = field(default_factory=list)


def parse_jsonc(text: str, display: str, problems: list[Problem]) -> dict[str, object] | None:
    """A JSONC document (comments, trailing commas) as a dict; a problem if it is not one."""
    import json5

    try:
        data = json5.loads(text)
    except ValueError as error:
        problems.append(Problem(f"{display} does not parse: {error}", Location(display)))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(f"{display} is not a JSON object", Location(display)))
        return None
    return data


def read_turbo(root: Path, package_dirs: list[str]) -> TurboConfig | None:
    """The root turbo.json and those of `package_dirs`, or None if the root has none."""
    path = root / TURBO_JSON
    if not path.is_file():
        return None
    problems: list[Problem] = []
    data = parse_jsonc(path.read_text(encoding="utf-8", errors="replace"), TURBO_JSON, problems)
    if data is None:
        return TurboConfig(2, "tasks", "strict", "turbo.json unreadable", problems=problems)
    config = from_document(data)
    package_tasks: dict[str, Mapping[str, Task]] = {}
    for directory in package_dirs:
        package_path = root / directory / TURBO_JSON
        if not package_path.is_file():
            continue
        display = f"{directory}/{TURBO_JSON}"
        text = package_path.read_text(encoding="utf-8", errors="replace")
        if (package_data := parse_jsonc(text, display, problems)) is not None:
            package_tasks[directory] = _tasks(package_data, config.tasks_key, display)
    return replace(config, package_tasks=package_tasks, problems=problems + config.problems)


def from_document(data: Mapping[str, object]) -> TurboConfig:
    """The root turbo.json's settings. Turbo 2 runs strict unless `envMode: loose`; turbo 1.x
    ran loose ("infer") unless some passThroughEnv was declared."""
    tasks_key = "pipeline" if "pipeline" in data and "tasks" not in data else "tasks"
    major: Literal[1, 2] = 1 if tasks_key == "pipeline" else 2
    tasks = _tasks(data, tasks_key, TURBO_JSON)
    global_pass = _strings(
        data.get("globalPassThroughEnv") or data.get("experimentalGlobalPassThroughEnv")
    )
    declared = data.get("envMode")
    if declared in ("strict", "loose"):
        mode: Literal["strict", "loose"] = "strict" if declared == "strict" else "loose"
        origin = f"turbo.json envMode: {declared}"
    elif major == 2:
        mode, origin = "strict", "turbo 2's default env mode"
    elif global_pass or any(task.pass_through_env for task in tasks.values()):
        mode, origin = "strict", "turbo 1.x infers strict mode from passThroughEnv"
    else:
        mode, origin = "loose", "turbo 1.x's default (infer) mode is loose without passThroughEnv"
    return TurboConfig(
        major=major,
        tasks_key=tasks_key,
        env_mode=mode,
        env_mode_origin=origin,
        global_env=_strings(data.get("globalEnv")),
        global_pass_through_env=global_pass,
        global_dot_env=_strings(data.get("globalDotEnv")),
        tasks=tasks,
    )


def task_for(config: TurboConfig, package: str, directory: str, task: str) -> Task | None:
    """The settings turbo uses for `task` in `package` (at `directory`); None if turbo.json
    does not define the task anywhere (turbo then refuses to run it)."""
    base = config.tasks.get(f"{package}#{task}") or config.tasks.get(task)
    own = config.package_tasks.get(directory, {}).get(task)
    if base is None:
        return own
    if own is None:
        return base
    merged = {key: getattr(own, key) for key in own.origin}
    unread = base.unread + own.unread
    return replace(base, **merged, unread=unread, origin={**base.origin, **own.origin})


_FIELDS = {
    "dependsOn": "depends_on",
    "env": "env",
    "passThroughEnv": "pass_through_env",
    "experimentalPassThroughEnv": "pass_through_env",
    "persistent": "persistent",
    "interactive": "interactive",
    "dotEnv": "dot_env",
}


def _tasks(data: Mapping[str, object], tasks_key: str, display: str) -> dict[str, Task]:
    tasks = data.get(tasks_key) or data.get("tasks") or data.get("pipeline")
    if not isinstance(tasks, dict):
        return {}
    found = {}
    for name, settings in tasks.items():
        if not isinstance(settings, dict):
            continue
        values: dict[str, object] = {}
        origin: dict[str, str] = {}
        for key, attribute in _FIELDS.items():
            if key not in settings:
                continue
            value = settings[key]
            values[attribute] = (
                bool(value) if attribute in ("persistent", "interactive") else _strings(value)
            )
            origin[attribute] = f"{display} {tasks_key}.{name}.{key}"
        unread = [f"{display} {tasks_key}.{name}.{key}" for key in settings if _unread(key)]
        found[name] = Task(**values, unread=tuple(unread), origin=origin)  # type: ignore[arg-type]
    return found


def _unread(key: str) -> bool:
    return key not in _FIELDS and key not in _CACHE_KEYS and not key.startswith("$")


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()
