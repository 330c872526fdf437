"""`devstack init`: write the repo's devstack.yaml, at the repo root, from what the repo
already says: its Procfile, else its JS/TS workspace and turbo.json, else a starter."""

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

# What marks a repo's root when there is no .git: the workspace file (a package may
# have its own turbo.json and package.json, so those do not).
_ROOT_MARKERS = (".git", "pnpm-workspace.yaml")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--procfile",
        metavar="PATH",
        help="convert this Procfile (default: the repo's Procfile if there is one)",
    )
    parser.add_argument(
        "--task",
        metavar="NAME",
        default="dev",
        help="in a JS/TS monorepo: the package.json script (turbo task) to run (default: dev)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing devstack.yaml")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from devstack.core.config import CONFIG_NAME
    from devstack.core.errors import EXIT_USAGE, DevstackError, Problem
    from devstack.runtime.files import write_atomically

    here = Path.cwd()
    if getattr(args, "config_file", None):
        target = Path(args.config_file)
    else:
        # Issue 11 §5: in apps/web, init used to write apps/web/devstack.yaml, which `up`
        # at the root never reads. It belongs at the repo root, and init says so.
        target = repo_root(here) / CONFIG_NAME
    root = target.resolve().parent
    shown = _shown(target, here)
    if target.exists() and not args.force:
        raise DevstackError(
            [Problem(f"{shown} already exists", hint="pass --force to replace it")],
            EXIT_USAGE,
        )
    procfile = Path(args.procfile) if args.procfile else root / "Procfile"
    if args.procfile and not procfile.is_file():
        raise DevstackError([Problem(f"no Procfile at {procfile}")], EXIT_USAGE)
    if procfile.is_file():
        text, summary = _from_procfile(procfile)
    elif (imported := _from_js_workspace(root, args.task)) is not None:
        text, summary = imported
    else:
        text, summary = STARTER, "a starter with one example service; edit it"
    write_atomically(target, text)
    where = "" if root == here.resolve() else " (the repo root, where devstack looks for it)"
    print(f"wrote {shown}{where}: {summary}")
    return 0


def repo_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds .git, else the nearest that
    holds pnpm-workspace.yaml, else `start` itself."""
    start = start.resolve()
    for marker in _ROOT_MARKERS:
        for directory in (start, *start.parents):
            if (directory / marker).exists():
                return directory
    return start


def _shown(target: Path, here: Path) -> str:
    import os

    relative = os.path.relpath(target.resolve(), here.resolve())
    return relative if not relative.startswith("../../../") else str(target.resolve())


def _from_procfile(procfile: Path) -> tuple[str, str]:
    import sys

    from devstack.core.errors import EXIT_USAGE, DevstackError
    from devstack.core.procfile import convert

    conversion = convert(procfile.read_text(errors="replace"), str(procfile.name))
    errors = [p for p in conversion.problems if p.severity == "error"]
    if errors:
        raise DevstackError(errors, EXIT_USAGE)
    for problem in conversion.problems:
        print(problem.render(), file=sys.stderr)
    names = ", ".join(conversion.services)
    return conversion.text, f"{len(conversion.services)} services from Procfile ({names})"


def _from_js_workspace(root: Path, task: str) -> tuple[str, str] | None:
    """devstack.yaml for a JS/TS monorepo at `root`, or None if `root` is not one."""
    import sys

    from devstack.core.errors import EXIT_USAGE, DevstackError, Problem
    from devstack.core.jsimport import plan_import, render
    from devstack.core.jsworkspace import find_workspace
    from devstack.core.turbo import read_turbo

    workspace = find_workspace(root)
    if workspace is None:
        return None
    turbo = read_turbo(root, [p.directory for p in workspace.packages])
    problems = workspace.problems + (turbo.problems if turbo else [])
    if problems:
        raise DevstackError(problems, EXIT_USAGE)
    plan = plan_import(workspace, turbo, task)
    if not plan.services:
        raise DevstackError(
            [
                Problem(
                    f"no workspace package has a `{task}` script",
                    hint="pass --task NAME with the script your packages' dev servers use",
                )
            ],
            EXIT_USAGE,
        )
    for item in plan.untranslated:
        print(f"warning: not translated: {item}", file=sys.stderr)
    names = ", ".join(s.name for s in plan.services)
    count = f"{len(plan.services)} service{'s' if len(plan.services) != 1 else ''}"
    return render(plan), f"{count} from {plan.source} ({names})"
