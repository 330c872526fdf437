"""Throughput: 4 services print 200,000 lines of 80 bytes each as fast as they can,
in 4 KiB writes that split lines; the supervisor's stdout is a pipe.

Each line is `#t<service>#<sequence>#` padded with the service's own letter to 79
bytes. From what reaches stdout we count, per service: lost lines (a sequence
number never seen intact under its own service's prefix), torn lines (a line with
part of a record), interleaved lines (a line holding bytes of two services, or a
record arriving after a later one of its service).

Wall time runs from launch to the arrival of the last record; MB/s is the 64 MB
over the streaming window (first service write to last record).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from bench.proc import Launched, new_marker
from bench.results import at_most, below
from bench.scenarios import PYTHON, Context
from bench.tools import SUPERVISORS, Service

SERVICES = 4
LINES = 200_000
LINE_BYTES = 80
WRITE_BYTES = 4096
PADS = "abcd"
QUIET = 3.0  # once every service has finished writing: no more output for this long = done
LIMIT = 120.0

EMITTER = f'''\
import os, sys, time
index, count = int(sys.argv[1]), int(sys.argv[2])
pad = "{PADS}"[index]
head = f"#t{{index}}#"
lines = (f"{{head}}{{seq:08d}}#".ljust({LINE_BYTES - 1}, pad) + "\\n" for seq in range(count))
body = "".join(lines).encode()
start = time.perf_counter()
for offset in range(0, len(body), {WRITE_BYTES}):
    view = memoryview(body)[offset:offset + {WRITE_BYTES}]
    while view:
        view = view[os.write(1, view):]
with open(f"done-{{index}}", "w") as done:
    done.write(repr(start))
time.sleep(3600)  # stay up: honcho stops the whole stack when one service exits
'''

RECORD = re.compile(r"#t(\d)#(\d{8})#([a-d]*)$")
FRAGMENT = re.compile(r"#t\d|[a-d]{8}")


@dataclass
class Tally:
    lost: int
    torn: int
    interleaved: int


def services() -> list[Service]:
    return [Service(f"t{i}", f"{PYTHON} emit.py {i} {LINES}") for i in range(SERVICES)]


def run(ctx: Context) -> None:
    scenario = "throughput 4×200k lines"
    rows = {
        "wall (s)": dict(target="< every peer", check=below(SUPERVISORS[1:])),
        "MB/s": dict(fmt="{:.1f}"),
        "lost lines": dict(fmt="{:.0f}", ratios=False, target="0", check=at_most(0)),
        "torn lines": dict(fmt="{:.0f}", ratios=False, target="0", check=at_most(0)),
        "interleaved lines": dict(fmt="{:.0f}", ratios=False),
    }
    for metric, options in rows.items():
        ctx.results.row(scenario, metric, **options)
    for rep in range(ctx.reps(3, 1)):
        for tool in ctx.tools.available(SUPERVISORS):
            figures = once(ctx, tool)
            for metric, value in figures.items():
                ctx.results.add(scenario, metric, tool, value)
            ctx.log(f"throughput {tool}: {figures}")
        ctx.log(f"{scenario}: rep {rep + 1} done")


def once(ctx: Context, tool: str) -> dict[str, float]:
    root = ctx.stack_dir(f"throughput-{tool}")
    (root / "emit.py").write_text(EMITTER)
    argv = ctx.tools.supervise(tool, root, services())
    launched = Launched(argv, cwd=root, marker=new_marker(), scan=False)
    try:
        finished = wait_delivered(launched, root)
        streaming_from = (
            min(
                float((root / f"done-{i}").read_text() or "inf")
                for i in range(SERVICES)
                if (root / f"done-{i}").exists()
            )
            if finished
            else None
        )
    finally:
        launched.close()
    tally = count(b"".join(launched.capture.chunks))
    end = finished or launched.capture.last_at or time.perf_counter()
    megabytes = SERVICES * LINES * LINE_BYTES / 1e6
    return {
        "wall (s)": end - launched.started_at,
        "MB/s": megabytes / (end - streaming_from) if streaming_from else 0.0,
        "lost lines": tally.lost,
        "torn lines": tally.torn,
        "interleaved lines": tally.interleaved,
    }


def wait_delivered(launched: Launched, root: Path) -> float | None:
    """When the last record arrived: every final record seen, or all services done
    writing and the output quiet for QUIET seconds. None past LIMIT."""
    finals = [f"#t{i}#{LINES - 1:08d}#".encode() for i in range(SERVICES)]
    capture = launched.capture
    deadline = time.perf_counter() + LIMIT
    scanned = 0
    seen: set[int] = set()
    while time.perf_counter() < deadline:
        with capture.changed:
            capture.changed.wait(0.5)
            chunks = capture.chunks[scanned:]
            last_at = capture.last_at
        tail = b"".join(capture.chunks[max(0, scanned - 1) : scanned])[-40:]
        for chunk in chunks:
            window = tail + chunk
            seen.update(i for i, final in enumerate(finals) if final in window)
            tail = chunk[-40:]
        scanned += len(chunks)
        if len(seen) == SERVICES:
            return last_at
        writers_done = all((root / f"done-{i}").exists() for i in range(SERVICES))
        if writers_done and last_at and time.perf_counter() - last_at > QUIET:
            return last_at
        if capture.closed:
            return last_at
    return None


def count(output: bytes) -> Tally:
    """Lost, torn and interleaved lines in everything the supervisor printed."""
    seen = [bytearray(LINES) for _ in range(SERVICES)]
    last = [-1] * SERVICES
    torn = interleaved = 0
    for line in output.decode("latin-1").split("\n"):
        first = line.find("#")
        match = RECORD.search(line) if first >= 0 else None
        if match and match.start() == first:
            index, seq, pad = int(match[1]), int(match[2]), match[3]
            prefix = line[:first]
            if pad == PADS[index] * (LINE_BYTES - 14) and seq < LINES and f"t{index}" in prefix:
                seen[index][seq] = 1
                if seq < last[index]:
                    interleaved += 1
                last[index] = max(last[index], seq)
                continue
        if not FRAGMENT.search(line):
            continue  # the tool's own message
        if len({c for c in line if c in PADS}) > 1 or len(re.findall(r"#t\d", line)) > 1:
            interleaved += 1
        else:
            torn += 1
    lost = sum(LINES - sum(flags) for flags in seen)
    return Tally(lost, torn, interleaved)
