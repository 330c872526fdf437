"""Shutdown: 5 services, one ignoring SIGINT and SIGTERM, one with a background
grandchild, one behind an `npm run`-like wrapper shell. The supervisor is ended by
SIGINT to its process group (a terminal's Ctrl+C), SIGTERM to its pid, or SIGKILL
to its pid; we time its exit and, 1 s later, count the processes still carrying
the run's marker in their environment (or running in the stack's directory).
"""

from __future__ import annotations

import re
import signal
import time

from bench.proc import Launched, marked, new_marker
from bench.results import at_most
from bench.scenarios import PYTHON, Context
from bench.tools import SUPERVISORS, Service

READY = re.compile(rb"BENCHREADY-(\w+)")
EXIT_LIMIT = 15.0  # a tool still running after this is recorded as 15 s (and noted)
LEFT_AFTER = 1.0  # the "processes left 1 s later"
STOP_TIMEOUT = 5.0  # devstack's default stop_timeout (model.DEFAULT_STOP_TIMEOUT)

STUBBORN = """\
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("BENCHREADY-stubborn", flush=True)
time.sleep(3600)
"""
SERVER = """\
import sys, time
print(f"BENCHREADY-{sys.argv[1]}", flush=True)
time.sleep(3600)
"""
# What `npm run dev` does: a shell that runs the real server as its child (no exec).
WRAPPER = f"""\
#!/bin/sh
{PYTHON} server.py wrapped
status=$?
exit $status
"""

MODES = {
    "SIGINT to group": (signal.SIGINT, True),
    "SIGTERM to pid": (signal.SIGTERM, False),
    "SIGKILL to pid": (signal.SIGKILL, False),
}


def services() -> list[Service]:
    return [
        Service("plain", f"{PYTHON} server.py plain"),
        Service("stubborn", f"{PYTHON} stubborn.py"),
        # non-interactive sh: the background job ignores SIGINT, as in a real script
        Service("grandchild", "sleep 3600 & echo BENCHREADY-grandchild; wait"),
        Service("wrapped", "sh wrapper.sh"),
        Service("sleeper", "echo BENCHREADY-sleeper; exec sleep 3600"),
    ]


def run(ctx: Context) -> None:
    for mode in MODES:
        scenario = f"shutdown: {mode}"
        time_row = ctx.results.row(scenario, "time to exit (s)")
        left_row = ctx.results.row(
            scenario,
            "processes left after 1 s",
            fmt="{:.0f}",
            ratios=False,
            target="0",
            check=at_most(0),
        )
        if mode == "SIGINT to group":
            time_row.target = f"≤ stop_timeout + 0.3 = {STOP_TIMEOUT + 0.3:.1f}"
            time_row.check = at_most(STOP_TIMEOUT + 0.3)
        del left_row
    for rep in range(ctx.reps(3, 1)):
        for mode in MODES:
            for tool in ctx.tools.available(SUPERVISORS):
                once(ctx, tool, mode)
        ctx.log(f"shutdown: rep {rep + 1} done")


def once(ctx: Context, tool: str, mode: str) -> None:
    scenario = f"shutdown: {mode}"
    root = ctx.stack_dir(f"shutdown-{tool}")
    (root / "stubborn.py").write_text(STUBBORN)
    (root / "server.py").write_text(SERVER)
    (root / "wrapper.sh").write_text(WRAPPER)
    argv = ctx.tools.supervise(tool, root, services())
    marker = new_marker()
    launched = Launched(argv, cwd=root, marker=marker)
    try:
        if launched.wait_tokens(READY, len(services()), 30.0) is None:
            ctx.log(f"{tool}: services not ready\n{launched.stderr()[-2000:]}")
            return
        time.sleep(0.3)  # let the shells start their background children
        signum, group = MODES[mode]
        sent_at = launched.signal(signum, group=group)
        exited_at = launched.wait_exit(EXIT_LIMIT)
        if exited_at is None:
            ctx.results.note(
                scenario, "time to exit (s)", tool, f"still running after {EXIT_LIMIT:.0f} s"
            )
            exited_at = sent_at + EXIT_LIMIT
        ctx.results.add(scenario, "time to exit (s)", tool, exited_at - sent_at)
        time.sleep(max(0.0, exited_at + LEFT_AFTER - time.perf_counter()))
        left = marked(marker, root, launched.launched_wall)
        ctx.results.add(scenario, "processes left after 1 s", tool, len(left))
        names = [process.name() for process in left if process.is_running()]
        ctx.log(f"{scenario} {tool}: exit {exited_at - sent_at:.3f}s, left {names}")
    finally:
        launched.close()
