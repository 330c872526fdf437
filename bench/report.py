"""BENCHMARKS.md: the machine, the tool versions, the table, how to reproduce."""

from __future__ import annotations

import os
import platform
import time

from bench.results import Results, render
from bench.tools import Tools


def machine() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
    ]


def markdown(results: Results, tools: Tools, *, quick: bool) -> str:
    versions = ", ".join(f"{name} {tools.version(name)}" for name in results.tools())
    lines = [
        "# Benchmarks",
        "",
        f"Run on {time.strftime('%Y-%m-%d')} with `python -m bench{' --quick' if quick else ''}`.",
        "",
        *machine(),
        f"- Tools: {versions}",
        "",
        render(results.table(), markdown=True),
        "",
        *(f"- {line}" for line in results.notes()),
    ]
    return "\n".join(lines) + "\n"
