"""Idle: 5 idle services and a watched tree of 10,000 files; the supervisor's CPU
seconds over 10 s and its memory (PSS) at the end.

"The supervisor" is the tool's own processes: the one we launched plus any helper
it started that is not a service or under one (devstack's guardian, for example).
Only devstack watches the tree (honcho and concurrently cannot watch), so its
figure includes the cost of watching 10,000 files.

Beside devstack, the floor of any supervisor written like it: the same Python running
a bare asyncio loop, imported without ssl as devstack's is (runtime/lean.py), which
does nothing; measured the same way, in the devstack column of its own row.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from pathlib import Path

import psutil

from bench.proc import Launched, marked, new_marker
from bench.results import below
from bench.scenarios import Context
from bench.tools import STARTERS, Service

READY = re.compile(rb"BENCHIDLE(\d+)X")
SERVICES = 5
TREE_DIRS, TREE_FILES = 100, 100  # 10,000 files
WINDOW = 10.0
SETTLE = 2.0  # after every service is up: watches set up, imports done
SERVICE_TAG = "BENCHIDLE"
FLOOR = (
    "import sys; sys.modules['ssl'] = None\n"
    "import asyncio\n"
    "async def main():\n"
    "    print('BENCHIDLE0X', flush=True)\n"
    "    await asyncio.sleep(3600)\n"
    "asyncio.run(main())\n"
)
FLOOR_METRIC = "PSS floor: a bare asyncio loop, same Python (MiB)"
# PSS counts a share of each shared library (libpython, libcrypto, Ruby's): it falls as
# other processes map the same ones. USS, the pages no other process maps, does not.
USS_METRIC = "USS, private pages only (MiB)"


def services() -> list[Service]:
    # the first watches the tree (under devstack; the other tools cannot watch)
    return [
        Service(
            f"idle{i}",
            f"echo {SERVICE_TAG}{i}X; exec sleep 3600",
            watch=("tree",) if i == 0 else (),
        )
        for i in range(SERVICES)
    ]


def make_tree(root: Path) -> None:
    for d in range(TREE_DIRS):
        directory = root / "tree" / f"pkg{d:03d}"
        directory.mkdir(parents=True)
        for f in range(TREE_FILES):
            (directory / f"mod{f:03d}.py").write_text(f"X = {f}\n")


def run(ctx: Context) -> None:
    scenario = "idle 5 services, 10k files"
    ctx.results.row(
        scenario,
        f"CPU s over {WINDOW:.0f} s",
        target="< 0.05",
        check=lambda m: m["devstack"] < 0.05,
    )
    ctx.results.row(
        scenario,
        "PSS (MiB)",
        fmt="{:.1f}",
        target="< foreman",  # issue 16
        check=below(["foreman"]),
    )
    tools = ctx.tools.available(STARTERS)
    for rep in range(ctx.reps(2, 1)):
        for tool in tools:
            once(ctx, tool)
        if "devstack" in tools:
            floor(ctx)
        ctx.log(f"idle: rep {rep + 1} done")


def once(ctx: Context, tool: str) -> None:
    scenario = "idle 5 services, 10k files"
    root = ctx.stack_dir(f"idle-{tool}")
    make_tree(root)
    argv = ctx.tools.supervise(tool, root, services())
    marker = new_marker()
    launched = Launched(argv, cwd=root, marker=marker, **ctx.tools.launch_options(tool, root))
    try:
        if launched.wait_tokens(READY, SERVICES, 30.0) is None:
            ctx.log(f"{tool}: services not ready\n{launched.stderr()[-2000:]}")
            return
        time.sleep(SETTLE)
        own = own_processes(launched)
        before = cpu_seconds(own)
        time.sleep(WINDOW)
        cpu = cpu_seconds(own) - before
        pss = sum(_memory(process, "pss") for process in own) / 2**20
        uss = sum(_memory(process, "uss") for process in own) / 2**20
        ctx.results.add(scenario, f"CPU s over {WINDOW:.0f} s", tool, cpu)
        ctx.results.add(scenario, "PSS (MiB)", tool, pss)
        ctx.results.add(scenario, USS_METRIC, tool, uss, fmt="{:.1f}")
        ctx.log(
            f"idle {tool}: {[p.name() for p in own]} cpu {cpu:.3f}s"
            f" pss {pss:.1f} MiB uss {uss:.1f} MiB"
        )
    finally:
        launched.close()


def floor(ctx: Context) -> None:
    """The PSS of a Python that only runs an idle asyncio loop, measured as `once` does."""
    root = ctx.stack_dir("idle-floor")
    argv = [sys.executable, "-c", FLOOR]
    launched = Launched(argv, cwd=root, marker=new_marker())
    try:
        if launched.wait_tokens(READY, 1, 30.0) is None:
            ctx.log(f"floor: not ready\n{launched.stderr()[-2000:]}")
            return
        time.sleep(SETTLE + WINDOW)
        pss = _memory(psutil.Process(launched.pid), "pss") / 2**20
        ctx.results.add(
            "idle 5 services, 10k files", FLOOR_METRIC, "devstack", pss, fmt="{:.1f}", ratios=False
        )
        ctx.log(f"idle floor: pss {pss:.1f} MiB")
    finally:
        launched.close()


def own_processes(launched: Launched) -> list[psutil.Process]:
    """The tool's process and helpers: marked processes that are no service's."""
    pid = launched.pid
    everything = marked(launched.marker, launched.cwd, launched.launched_wall)
    services: set[int] = set()
    for process in everything:
        with contextlib.suppress(psutil.Error):
            is_service = SERVICE_TAG in " ".join(process.cmdline()) or process.name() == "sleep"
            if process.pid != pid and is_service:
                services.add(process.pid)
                services.update(child.pid for child in process.children(recursive=True))
    helpers = [p for p in everything if p.pid not in services and p.pid != pid]
    return [psutil.Process(pid), *helpers]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _memory(process: psutil.Process, kind: str) -> int:
    """PSS (shared pages split among the processes that map them) or USS (private)."""
    with contextlib.suppress(psutil.Error):
        return int(getattr(process.memory_full_info(), kind))
    return 0
