"""Reload latency (devstack alone: issue 16 moved the checks of a reload into a child
process): time from an edit of an env file to the first line of the service instance
that got the new value, beside a watched source file's edit, measured the same way.

The service prints `BENCHRELOAD <value> <pid>` first thing; each edit gives the
variable a new value (the env file) or the source a new version (the watched file).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from bench.proc import Launched, new_marker
from bench.scenarios import PYTHON, Context
from bench.tools import BIN

STARTED = re.compile(rb"BENCHRELOAD (\S+) (\d+)")
SERVICE = (
    "import os, time\n"
    "print(f\"BENCHRELOAD {os.environ['BENCH_VALUE']}-{open('app/watched.py').read().strip()}"
    ' {os.getpid()}", flush=True)\n'
    "time.sleep(3600)\n"
)
CONFIG = f"""\
services:
  app:
    cmd: [{PYTHON}, app/svc.py]
    env: [BENCH_VALUE]
    watch: [app/watched.py]
"""
SCENARIO = "reload (devstack)"
ENV_EDIT = "env file edit → new instance's first line (s)"
SOURCE_EDIT = "watched file edit → new instance's first line (s)"
SETTLE, GAP, TIMEOUT = 1.0, 0.5, 15.0


def run(ctx: Context) -> None:
    ctx.results.row(SCENARIO, ENV_EDIT, ratios=False)
    ctx.results.row(SCENARIO, SOURCE_EDIT, ratios=False)
    root = ctx.stack_dir("reload")
    (root / "app").mkdir()
    (root / "app" / "svc.py").write_text(SERVICE)
    (root / "app" / "watched.py").write_text("0\n")
    (root / ".env").write_text("BENCH_VALUE=0\n")
    (root / "devstack.yaml").write_text(CONFIG)
    launched = Launched([str(BIN / "devstack"), "up"], cwd=root, marker=new_marker())
    try:
        if launched.wait_tokens(STARTED, 1, TIMEOUT) is None:
            ctx.log(f"reload: never started\n{launched.stderr()[-2000:]}")
            return
        time.sleep(SETTLE)
        for edit in range(1, ctx.reps(7, 3) + 1):
            for metric, path, text in (
                (ENV_EDIT, root / ".env", f"BENCH_VALUE={edit}\n"),
                (SOURCE_EDIT, root / "app" / "watched.py", f"{edit}\n"),
            ):
                latency = one_edit(launched, path, text)
                if latency is not None:
                    ctx.results.add(SCENARIO, metric, "devstack", latency)
                time.sleep(GAP)
        ctx.log("reload: done")
    finally:
        launched.close()


def one_edit(launched: Launched, path: Path, text: str) -> float | None:
    with launched.capture.changed:
        count = len({match.group(2) for _, _, match in launched.capture.find(STARTED)}) + 1
    written_at = time.perf_counter()
    path.write_text(text)
    arrived = launched.wait_tokens(re.compile(rb"BENCHRELOAD \S+ (\d+)"), count, TIMEOUT)
    return None if arrived is None else arrived - written_at
