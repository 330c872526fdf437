"""Task id -> task module, from every module in the `tasks` package.

A task module defines `TASK_ID` (the id jobs are enqueued under) and
`run(payload, ctx)`, returning a JSON-able result.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from types import ModuleType

import tasks


class RegistryError(Exception):
    pass


def load_tasks() -> dict[str, ModuleType]:
    registry: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(tasks.__path__), key=lambda i: i.name):
        try:
            module = importlib.import_module(f"tasks.{info.name}")
        except Exception as error:  # a typo in a task must say where, not dump a traceback
            raise RegistryError(f"tasks/{info.name}.py cannot be imported: {error!r}") from None
        task_id = getattr(module, "TASK_ID", None)
        if not isinstance(task_id, str) or not callable(getattr(module, "run", None)):
            raise RegistryError(
                f"tasks/{info.name}.py needs TASK_ID = '...' and def run(payload, ctx)"
            )
        if task_id in registry:
            other = registry[task_id].__name__
            raise RegistryError(
                f"task id {task_id!r} is defined twice: {other} and {module.__name__}"
            )
        registry[task_id] = module
    return registry


def unknown_task_message(task_id: str, registry: dict[str, ModuleType]) -> str:
    close = difflib.get_close_matches(task_id, list(registry), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(sorted(registry)) or "none"
    return f"no task registered under {task_id!r} (known: {known}){hint}"
