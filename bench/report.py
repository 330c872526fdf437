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


METHOD = """\
## What is measured

Every tool runs the same generated services (a devstack.yaml, the equivalent Procfile
for honcho and foreman, an mprocs.yaml, the same commands for concurrently; the same
watched service for watchfiles' CLI and nodemon), each command under `/bin/sh -c`
(devstack execs a command without shell syntax itself, such as throughput's
`python emit.py`; dash, Debian's sh, execs such a lone command too), with stdout
piped to the harness and the tool in a session of its own. mprocs, a full-screen
TUI, runs on a 50×200 pseudo-terminal instead and is timed from the per-service log
files it writes (`--log-dir`, read every 1 ms); it takes part in startup and idle
only. Cells are medians; `(×r)` is
devstack/peer (below 1: devstack lower). `*` marks a figure with a note below.

- **startup**: N services `echo TOKEN; exec sleep`; launch → every token on stdout
  (one warm-up run per tool first). Each tool starts its stack again and again in
  one directory, as a developer does, so devstack starts from the plan its previous
  run kept (its fast start); the "first in a repo" rows use a fresh directory for
  every run (no plan), for every tool.
- **throughput**: 4 services × 200,000 lines of 80 bytes, written in 4 KiB chunks that
  split lines. Wall: launch → last record on stdout. MB/s: 64 MB over first service
  write → last record. Lost: sequence numbers never seen intact under their own
  service's prefix. Torn: lines holding part of a record. Interleaved: lines mixing two
  services, or a record after a later one of its service.
- **restart**: `python app/svc.py` watching `app/`; write of a watched file → the new
  instance's first line. Burst: 500 files under `app/` rewritten at once; restarts
  seen until 3 s pass without one; last restart measured from the burst's first write.
- **shutdown**: 5 services (plain Python, one ignoring SIGINT and SIGTERM, a shell
  with a background `sleep`, an `npm run`-like wrapper shell, `exec sleep`); SIGINT
  to the tool's process group, SIGTERM or SIGKILL to its pid; time to exit (capped at
  15 s) and processes left 1 s after it, found by a marker in their environment or a
  cwd inside the stack's directory.
- **idle**: 5 `exec sleep` services, one watching a tree of 10,000 files (only devstack
  can watch); CPU seconds (user + system) of the tool's own processes (the launched
  one plus helpers such as devstack's guardian, not the services) over 10 s, and
  their summed PSS.
"""

REPRODUCE = """\
## Reproduce

```sh
make bench                                # = .venv/bin/python -m bench
.venv/bin/python -m bench --quick         # fewer repetitions (a smoke run, ~4 min)
.venv/bin/python -m bench startup restart # only these scenarios
.venv/bin/python -m bench --tools devstack,honcho --no-npm
.venv/bin/python -m bench policy          # the policy step alone, before and after
.venv/bin/python -m bench reload          # devstack alone: an env file edit against a source edit
.venv/bin/python -m bench --write BENCHMARKS.md   # regenerate this file
```

honcho and watchfiles come with devstack's dependencies. When `node` and `npm` are on
PATH, concurrently@10, nodemon@3 and mprocs@0.9 are installed once into
`~/.cache/devstack-bench/node` (`--no-npm` skips them); mprocs' npm package carries
its prebuilt binaries (nothing is downloaded at install time) and the harness runs
the binary, not the package's node wrapper. foreman is Debian's `ruby-foreman`,
installed with apt-get when it is missing and the harness runs as root. The harness
compiles the .pyc files of devstack, honcho and watchfiles first, so an editable
checkout run with PYTHONDONTWRITEBYTECODE=1 is not charged ~100 ms of compiling per
start.
"""


def load_average() -> str:
    """The 1/5/15-minute load averages: a loaded machine slows every tool's start."""
    try:
        return " / ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "?"


def markdown(results: Results, tools: Tools, *, quick: bool, date: str | None = None) -> str:
    versions = ", ".join(f"{name} {tools.version(name)}" for name in results.tools())
    command = "python -m bench --quick" if quick else "python -m bench"
    lines = [
        "# Benchmarks",
        "",
        f"Run on {date or time.strftime('%Y-%m-%d')} with `{command}`.",
        "",
        *machine(),
        f"- Tools: {versions}",
        f"- Load average at the end of the run (1/5/15 min): {load_average()}",
        "",
        render(results.table(), markdown=True),
        "",
        *(f"- {line}" for line in results.notes()),
        "",
        METHOD,
        REPRODUCE,
    ]
    return "\n".join(lines) + "\n"
