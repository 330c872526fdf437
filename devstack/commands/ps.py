"""`devstack ps`: the services of the running stack, one row each.

State, pid, uptime, restarts and last exit come from the running `up`; CPU and
memory are of each service's whole process tree, read here with psutil. CPU % is
the tree's CPU time over the service's uptime, as ps(1) counts it.
"""

from __future__ import annotations

import argparse
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from devstack.runtime import control

    reply = control.request(control.repo_root(args.config_file), "ps")
    now = time.time()
    rows = [_with_usage(row, now) for row in reply["services"]]
    if args.json:
        print(json.dumps({"pid": reply["pid"], "root": reply["root"], "services": rows}, indent=2))
    else:
        _print_table(rows)
    return 0


def _with_usage(row: dict[str, Any], now: float) -> dict[str, Any]:
    """The row with uptime, and CPU % and memory of the service's process tree."""
    started = row.get("started_at")
    uptime = now - started if started else None
    cpu, memory = _tree_usage(row["pid"], uptime) if row.get("pid") else (None, None)
    return {**row, "uptime": uptime, "cpu_percent": cpu, "memory_bytes": memory}


def _tree_usage(pid: int, uptime: float | None) -> tuple[float | None, int | None]:
    from devstack.runtime.usage import tree_usage

    measured = tree_usage(pid)
    if measured is None:
        return None, None
    cpu_seconds, memory = measured
    cpu = round(100 * cpu_seconds / uptime, 1) if uptime else None
    return cpu, memory


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    headers = ("SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "CPU %", "MEM", "PORT")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, no_wrap=True, justify="left" if header == "SERVICE" else "right")
    table.columns[1].justify = "left"
    for row in rows:
        state = row["state"] + (f" ({row['detail']})" if row.get("detail") else "")
        cells = (
            row["name"],
            state,
            _or_dash(row.get("pid")),
            format_duration(row["uptime"]) if row.get("uptime") is not None else "-",
            str(row["restarts"]),
            format_exit(row.get("last_exit")),
            _or_dash(row.get("cpu_percent")),
            format_bytes(row["memory_bytes"]) if row.get("memory_bytes") is not None else "-",
            _or_dash(row.get("port")),
        )
        table.add_row(*(Text(cell) for cell in cells))  # Text: names are never markup
    Console(highlight=False, width=max(_width(), 100)).print(table)


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def format_exit(code: int | None) -> str:
    """`0`, `1`, or `SIGTERM` for a process killed by a signal."""
    import signal

    if code is None:
        return "-"
    if code >= 0:
        return str(code)
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def format_duration(seconds: float) -> str:
    """`45s`, `3m12s`, `2h05m`, `3d04h`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_bytes(count: int) -> str:
    """`812K`, `34.5M`, `1.2G`."""
    size = float(count)
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.0f}{unit}" if unit in ("B", "K") else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"
