"""CPU time and memory of a process and its descendants, read with psutil: what `ps`
and the UI show for a service (both read the same numbers, one way)."""

from __future__ import annotations

import psutil


def tree_usage(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of `pid` and every descendant; None once it is gone."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu_seconds, memory = 0.0, 0
    for proc in tree:
        try:
            times = proc.cpu_times()
            cpu_seconds += times.user + times.system
            memory += proc.memory_info().rss
        except psutil.Error:
            continue  # ended meanwhile
    return cpu_seconds, memory
