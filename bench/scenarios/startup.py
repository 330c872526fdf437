"""Startup: N trivial services each print a token; time from launch until every
token has reached the supervisor's stdout (N = 3 and N = 50).

Each tool starts the same stack again and again in one directory, as a developer
does: devstack then starts from the plan its previous run kept (its fast start).
A second row per N times devstack's first start in a repo (a fresh directory each
time, no plan); the peers, which keep nothing, run the same way there too.
"""

from __future__ import annotations

import re
from pathlib import Path

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
        for first in (False, True):
            scenario = f"startup N={count}" + (", first in a repo" if first else "")
            row = ctx.results.row(scenario, "launch → all tokens (s)")
            if not first:
                row.target, row.check = f"< {peer}", below([peer])
            # One directory and one environment per tool, as a developer's shell keeps:
            # the run's marker is part of the environment devstack's plan is keyed by.
            stacks: dict[str, tuple[Path, str]] = {}
            for rep in range(-1, ctx.reps(10, 3)):
                for tool in ctx.tools.available(STARTERS):
                    if first or tool not in stacks:
                        stacks[tool] = (ctx.stack_dir(f"startup{count}-{tool}"), new_marker())
                    elapsed = once(ctx, tool, count, *stacks[tool])
                    if rep < 0:
                        continue  # a warm-up: page cache, .pyc files, node's compile cache
                    if elapsed is None:
                        ctx.results.note(scenario, row.metric, tool, "tokens missing")
                    else:
                        ctx.results.add(scenario, row.metric, tool, elapsed)
                ctx.log(f"{scenario}: rep {rep + 1} done")


def once(ctx: Context, tool: str, count: int, root: Path, marker: str) -> float | None:
    argv = ctx.tools.supervise(tool, root, services(count))
    launched = Launched(argv, cwd=root, marker=marker, **ctx.tools.launch_options(tool, root))
    try:
        last = launched.wait_tokens(TOKEN, count, TIMEOUT)
        if last is None:
            ctx.log(f"{tool}: not every token within {TIMEOUT}s\n{launched.stderr()[-2000:]}")
            return None
        return last - launched.started_at
    finally:
        launched.close()
