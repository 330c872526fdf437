"""Startup: N trivial services each print a token; time from launch until every
token has reached the supervisor's stdout (N = 3 and N = 50)."""

from __future__ import annotations

import re

from bench.proc import Launched, new_marker
from bench.results import below
from bench.scenarios import Context
from bench.tools import STARTERS, Service

TOKEN = re.compile(rb"BENCHTOKEN(\d+)X")
TIMEOUT = 30.0


def services(count: int) -> list[Service]:
    # exec sleep: the service stays up (honcho stops the stack when one exits)
    return [Service(f"s{i}", f"echo BENCHTOKEN{i}X; exec sleep 3600") for i in range(count)]


def run(ctx: Context) -> None:
    # issue 16's targets: 3 services below honcho, 50 below foreman
    for count, peer in ((3, "honcho"), (50, "foreman")):
        scenario = f"startup N={count}"
        row = ctx.results.row(scenario, "launch → all tokens (s)", target=f"< {peer}")
        row.check = below([peer])
        for rep in range(-1, ctx.reps(10, 3)):
            for tool in ctx.tools.available(STARTERS):
                elapsed = once(ctx, tool, count)
                if rep < 0:
                    continue  # a warm-up: page cache, .pyc files, node's compile cache
                if elapsed is None:
                    ctx.results.note(scenario, row.metric, tool, "tokens missing")
                else:
                    ctx.results.add(scenario, row.metric, tool, elapsed)
            ctx.log(f"{scenario}: rep {rep + 1} done")


def once(ctx: Context, tool: str, count: int) -> float | None:
    root = ctx.stack_dir(f"startup{count}-{tool}")
    argv = ctx.tools.supervise(tool, root, services(count))
    marker = new_marker()
    launched = Launched(argv, cwd=root, marker=marker, **ctx.tools.launch_options(tool, root))
    try:
        last = launched.wait_tokens(TOKEN, count, TIMEOUT)
        if last is None:
            ctx.log(f"{tool}: not every token within {TIMEOUT}s\n{launched.stderr()[-2000:]}")
            return None
        return last - launched.started_at
    finally:
        launched.close()
