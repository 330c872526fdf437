"""`devstack init`: write a devstack.yaml here, from the Procfile when there is one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

STARTER = """\
# devstack.yaml: the services of this repo. `devstack up` starts them all.
# Reference: the README's devstack.yaml section, or `devstack schema`.
env_mode: strict
env: []                     # variables of the root .env or the shell every service gets
services:
  web:
    cmd: python3 -m http.server $PORT
    port: 8000              # sets PORT
    # cwd: services/web     # default: the repo root
    # env: [DATABASE_URL]   # what this service gets besides its own .env files
    # depends_on: [db]
    # ready: {http: "http://127.0.0.1:8000/"}
    # watch: [src/]         # restart when these change
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--procfile",
        metavar="PATH",
        help="convert this Procfile (default: ./Procfile if there is one)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing devstack.yaml")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from devstack.config import CONFIG_NAME
    from devstack.errors import EXIT_USAGE, DevstackError, Problem
    from devstack.files import write_atomically

    target = Path(args.config_file) if getattr(args, "config_file", None) else Path(CONFIG_NAME)
    if target.exists() and not args.force:
        raise DevstackError(
            [Problem(f"{target} already exists", hint="pass --force to replace it")],
            EXIT_USAGE,
        )
    procfile = Path(args.procfile) if args.procfile else Path("Procfile")
    if args.procfile and not procfile.is_file():
        raise DevstackError([Problem(f"no Procfile at {procfile}")], EXIT_USAGE)
    if procfile.is_file():
        text, summary = _from_procfile(procfile)
    else:
        text, summary = STARTER, "a starter with one example service; edit it"
    write_atomically(target, text)
    print(f"wrote {target}: {summary}")
    return 0


def _from_procfile(procfile: Path) -> tuple[str, str]:
    import sys

    from devstack.errors import EXIT_USAGE, DevstackError
    from devstack.procfile import convert

    conversion = convert(procfile.read_text(errors="replace"), str(procfile))
    errors = [p for p in conversion.problems if p.severity == "error"]
    if errors:
        raise DevstackError(errors, EXIT_USAGE)
    for problem in conversion.problems:
        print(problem.render(), file=sys.stderr)
    names = ", ".join(conversion.services)
    return conversion.text, f"{len(conversion.services)} services from {procfile} ({names})"
