"""CPU and memory of each service's process tree, read with psutil in the UI's process.

CPU is the share of one core the tree used since the previous sample (as top shows
it), not `ps`'s average over the whole uptime: the UI samples it every second.
Reading /proc is blocking work: the app calls `sample` in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from devstack.runtime.usage import tree_usage


@dataclass(frozen=True)
class Usage:
    cpu_percent: float | None  # None on the first sample of a process: nothing to compare
    memory_bytes: int


class UsageSampler:
    """Remembers each tree's CPU time so the next sample can tell the rate."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[int, tuple[float, float]] = {}  # root pid -> (when, cpu seconds)

    def sample(self, pids: Iterable[int]) -> dict[int, Usage]:
        """Usage per root pid; a pid that is gone is left out."""
        now = self._clock()
        usages: dict[int, Usage] = {}
        seen: dict[int, tuple[float, float]] = {}
        for pid in pids:
            measured = tree_usage(pid)
            if measured is None:
                continue
            cpu_seconds, memory = measured
            before = self._last.get(pid)
            cpu = None
            if before is not None and now > before[0]:
                cpu = max(0.0, 100 * (cpu_seconds - before[1]) / (now - before[0]))
            usages[pid] = Usage(cpu, memory)
            seen[pid] = (now, cpu_seconds)
        self._last = seen  # pids gone since are forgotten: nothing grows without bound
        return usages
