"""The five scenarios of issue 7, by name, and what each is handed (`Context`)."""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.results import Results
from bench.tools import Tools

PYTHON = sys.executable  # every generated service runs this interpreter, under every tool


@dataclass
class Context:
    tools: Tools
    results: Results
    quick: bool
    workdir: Path
    log: Callable[[str], None]
    _counter: itertools.count = field(default_factory=itertools.count)

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def stack_dir(self, label: str) -> Path:
        """A fresh directory for one run of one tool."""
        path = self.workdir / f"{next(self._counter):03d}-{label}"
        path.mkdir(parents=True)
        return path


NAMES = ("startup", "throughput", "restart", "shutdown", "idle")
# Run only when named: `python -m bench policy` (the policy step alone, no peers),
# `python -m bench reload` (devstack's reload of an edited env file, no peers).
EXTRA_NAMES = ("policy", "reload")


def scenario(name: str) -> Callable[[Context], None]:
    """The `run(ctx)` of scenario `name` (each lives in bench/scenarios/NAME.py)."""
    return importlib.import_module(f"bench.scenarios.{name}").run  # type: ignore[no-any-return]
