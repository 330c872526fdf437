"""The checks a config and its env must pass before a run uses them: `up` before it
starts anything, and the file watcher before it applies a reload, the same way.

Only the services the run has or will start are checked: a broken service left out
of it must not block it. Ports are not checked here: the supervisor checks each
right before its service starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from devstack.core.envmodel import ProjectEnv
from devstack.core.errors import Problem
from devstack.core.model import Project


@dataclass(frozen=True)
class Verdict:
    env_errors: tuple[Problem, ...] = ()  # the env cannot be resolved: `up` exits 2
    errors: tuple[Problem, ...] = ()  # the doctor's errors: `up` exits 1
    warnings: tuple[Problem, ...] = ()  # said, and the run goes on

    @property
    def usable(self) -> bool:
        return not self.env_errors and not self.errors


def check_run(project: Project, env: ProjectEnv, names: Iterable[str]) -> Verdict:
    """Whether `project` and `env` may run the services `names`, and what to warn of."""
    from devstack.core.doctor import diagnose, narrowed

    chosen = dataclasses.replace(project, services={name: project.services[name] for name in names})
    # Only the env files that feed these services: one left out must not block the run.
    narrow = narrowed(chosen, env)
    env_errors = tuple(problem for problem in narrow.problems if problem.severity == "error")
    if env_errors:
        return Verdict(env_errors=env_errors)
    problems = diagnose(chosen, env, check_ports=False)
    return Verdict(
        errors=tuple(problem for problem in problems if problem.severity == "error"),
        warnings=tuple(problem for problem in problems if problem.severity != "error"),
    )
