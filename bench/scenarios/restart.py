"""Restart latency: a watched Python service; time from the write of a watched file
to the new instance's first line. Then a 500-file burst: how many restarts it
causes and when the last new instance printed its first line (from the burst's
first write).

Every instance prints `BENCHSTART <pid>` first thing. Each write changes the file's
content, so a watcher that drops unchanged writes still restarts.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from bench.proc import Launched, new_marker
from bench.results import Check, at_most, below
from bench.scenarios import PYTHON, Context
from bench.tools import WATCHERS, Service

STARTED = re.compile(rb"BENCHSTART (\d+)")
SERVICE = "import os, time\nprint(f'BENCHSTART {os.getpid()}', flush=True)\ntime.sleep(3600)\n"
BURST_FILES = 500
SETTLE = 1.0  # after the first instance: every tool has its watches in place by then
GAP = 0.5  # between writes, so one restart is over before the next write
BURST_QUIET = 3.0  # a burst is over once no new instance started for this long...
BURST_LIMIT = 20.0  # ...or this long after it (nodemon restarts seconds later)
TIMEOUT = 15.0


def run(ctx: Context) -> None:
    scenario = "restart"
    ctx.results.row(
        scenario,
        "write → new instance's first line (s)",
        target="≤ nodemon, < watchfiles",
        check=latency_target(),
    )
    ctx.results.row(
        "500-file burst",
        "restarts",
        fmt="{:.0f}",
        ratios=False,
        target="1",
        check=lambda m: m["devstack"] == 1,
    )
    ctx.results.row("500-file burst", "last restart (s)", target="≤ 0.3", check=at_most(0.3))
    for rep in range(ctx.reps(3, 1)):
        for tool in ctx.tools.available(WATCHERS):
            once(ctx, tool, writes=ctx.reps(5, 3))
        ctx.log(f"restart: rep {rep + 1} done")


def latency_target() -> Check:
    at_most_nodemon = below(["nodemon"], strict=False)
    under_watchfiles = below(["watchfiles"])
    return lambda medians: at_most_nodemon(medians) and under_watchfiles(medians)


def make_app(root: Path) -> None:
    app = root / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "svc.py").write_text(SERVICE)
    (app / "watched.py").write_text("VERSION = 0\n")
    for i in range(BURST_FILES):
        (app / "pkg" / f"mod_{i}.py").write_text(f"VALUE = {i}\n")


def once(ctx: Context, tool: str, writes: int) -> None:
    root = ctx.stack_dir(f"restart-{tool}")
    make_app(root)
    argv = ctx.tools.watch(tool, root, Service("app", f"{PYTHON} app/svc.py"), "app")
    launched = Launched(argv, cwd=root, marker=new_marker())
    try:
        if launched.wait_tokens(STARTED, 1, TIMEOUT) is None:
            ctx.log(f"{tool}: never started\n{launched.stderr()[-2000:]}")
            return
        time.sleep(SETTLE)
        for version in range(1, writes + 1):
            latency = one_write(launched, root / "app" / "watched.py", version)
            if latency is None:
                ctx.results.note(
                    "restart",
                    "write → new instance's first line (s)",
                    tool,
                    "a write did not restart",
                )
            else:
                ctx.results.add("restart", "write → new instance's first line (s)", tool, latency)
            time.sleep(GAP)
        restarts, last = burst(launched, root / "app" / "pkg")
        ctx.results.add("500-file burst", "restarts", tool, restarts)
        if last is not None:
            ctx.results.add("500-file burst", "last restart (s)", tool, last)
        ctx.log(f"restart {tool}: burst → {restarts} restarts, last at {last}")
    finally:
        launched.close()


def instances(launched: Launched) -> set[bytes]:
    with launched.capture.changed:
        return {match.group(1) for _, _, match in launched.capture.find(STARTED)}


def one_write(launched: Launched, path: Path, version: int) -> float | None:
    before = instances(launched)
    count = len(before) + 1
    written_at = time.perf_counter()
    path.write_text(f"VERSION = {version}\n")
    arrived = launched.wait_tokens(STARTED, count, TIMEOUT)
    return None if arrived is None else arrived - written_at


def burst(launched: Launched, pkg: Path) -> tuple[int, float | None]:
    """Rewrite every file under `pkg` at once; (restarts, last restart after start)."""
    with launched.capture.changed:
        cursor = len(launched.capture.lines)
    started_at = time.perf_counter()
    for i in range(BURST_FILES):
        (pkg / f"mod_{i}.py").write_text(f"VALUE = {i + 1000}\n")
    arrivals: list[float] = []

    def settled() -> bool:
        arrivals[:] = [at for _, at, _ in launched.capture.find(STARTED, cursor)]
        now = time.perf_counter()
        return (
            bool(arrivals) and now - max(arrivals) > BURST_QUIET
        ) or now - started_at > BURST_LIMIT

    while not launched.capture.wait_for(settled, 0.5) and not launched.capture.closed:
        pass  # re-evaluated on every output line and twice a second, for the quiet period
    return len(arrivals), (max(arrivals) - started_at if arrivals else None)
