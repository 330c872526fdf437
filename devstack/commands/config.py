"""`devstack config`: the fully resolved plan per service, like `docker compose config`."""

from __future__ import annotations

import argparse

from devstack.commands import add_env_overrides


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="SERVICE", help="only these services")
    parser.add_argument("--json", action="store_true", help="JSON instead of YAML")
    parser.add_argument("--reveal", action="store_true", help="show secret values")
    add_env_overrides(parser)


def run(args: argparse.Namespace) -> int:
    import json

    import yaml

    from devstack.commands import fail_on_env_errors, require_service, resolved
    from devstack.core.plan import service_plan

    project, env = resolved(args)
    named = [require_service(project, name) for name in args.names]
    fail_on_env_errors(env)
    names = named or list(project.services)
    plan = {
        "root": str(project.root),
        "env_mode": project.env_mode,
        "services": {name: service_plan(project, env, name, reveal=args.reveal) for name in names},
    }
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        print(yaml.safe_dump(plan, sort_keys=False, allow_unicode=True, width=100), end="")
    return 0
