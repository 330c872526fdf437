"""`python -m bench [--quick] [SCENARIO...]`: run the scenarios, print one table."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.results import Results, render
from bench.scenarios import EXTRA_NAMES, NAMES, Context, scenario
from bench.tools import Tools


def main(argv: list[str] | None = None) -> int:
    scenarios = NAMES + EXTRA_NAMES
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(scenarios)} (default: {', '.join(NAMES)})",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument(
        "--no-npm", action="store_true", help="skip concurrently, nodemon and mprocs"
    )
    parser.add_argument(
        "--tools", default="", help="comma-separated tools to run (default: all found)"
    )
    parser.add_argument(
        "--write",
        metavar="PATH",
        type=Path,
        help="also write the results as markdown (BENCHMARKS.md)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated stacks (for debugging)"
    )
    parser.add_argument("--date", help="the date --write puts in the file (default: today)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in scenarios]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(scenarios)}")

    def log(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    only = [name for name in args.tools.split(",") if name]
    tools = Tools(npm=not args.no_npm, only=only, log=log)
    tools.compile_python_peers()
    for tool, why in tools.skipped.items():
        log(f"skipping {tool}: {why}")
    workdir = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    results = Results()
    ctx = Context(tools=tools, results=results, quick=args.quick, workdir=workdir, log=log)
    started = time.monotonic()
    try:
        for name in args.names or list(NAMES):
            log(f"scenario {name}")
            scenario(name)(ctx)
    finally:
        if args.keep:
            log(f"stacks kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(results.table(), markdown=False))
    for line in results.notes():
        print(f"* {line}")
    log(f"done in {time.monotonic() - started:.0f} s; load average {report.load_average()}")
    if args.write:
        args.write.write_text(report.markdown(results, tools, quick=args.quick, date=args.date))
        log(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
