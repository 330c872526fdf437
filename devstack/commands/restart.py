"""`devstack restart SERVICE...`: restart services of the running stack and wait.

Also home of `act`, which `start` and `stop` share: send the request, wait until
the running `up` says the services have settled, and report each one.
"""

from __future__ import annotations

import argparse
from typing import Any

# Where each action should leave a service for it to count as done.
WANTED_STATES = {
    "restart": frozenset({"ready", "running", "exited"}),
    "start": frozenset({"ready", "running", "exited"}),
    "stop": frozenset({"stopped", "exited", "crashed"}),
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_names(parser, "restart")


def run(args: argparse.Namespace) -> int:
    return act(args, "restart")


def add_names(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("names", nargs="+", metavar="SERVICE", help=f"services to {verb}")


def act(args: argparse.Namespace, op: str) -> int:
    """Ask the running stack to `op` the services; report each; 0 if all went as asked."""
    from devstack.runtime import control

    names = list(dict.fromkeys(_service_names(args)))
    reply = control.request(control.repo_root(args.config_file), op, services=names)
    rows = {row["name"]: row for row in reply["services"]}
    ok = True
    for name in names:
        row = rows.get(name)
        if row is None:
            print(f"{name}: not part of this run; `devstack start {name}` starts it")
            ok = False
            continue
        line, went_well = describe_outcome(row, WANTED_STATES[op])
        print(line)
        ok &= went_well
    return 0 if ok else 1


def _service_names(args: argparse.Namespace) -> list[str]:
    """Package names (`@v1/jobs`) as the services they name, when devstack.yaml is at hand;
    without it the running stack judges the names itself."""
    from devstack.commands import project_from_args
    from devstack.core.errors import DevstackError
    from devstack.core.packages import packages_of

    try:
        project = project_from_args(args)
    except DevstackError:
        return list(args.names)
    if all(name in project.services for name in args.names):
        return list(args.names)
    packages = packages_of(project)
    return [packages.get(name, name) for name in args.names]


def describe_outcome(row: dict[str, Any], wanted: frozenset[str]) -> tuple[str, bool]:
    """`api: ready (pid 4242)` or `jobs: crashed (exited 1)`, and whether that is wanted."""
    from devstack.core.policy import describe_exit

    state = row["state"]
    went_well = state in wanted and not (state == "exited" and row.get("last_exit"))
    if row.get("pid") and state in ("ready", "running", "starting"):
        how = f"pid {row['pid']}"
    elif row.get("last_exit") is not None and state != "stopped":
        how = describe_exit(row["last_exit"])
    else:
        how = ""
    detail = "; ".join(part for part in (how, row.get("detail") or "") if part)
    return f"{row['name']}: {state}" + (f" ({detail})" if detail else ""), went_well
