"""`devstack env`: what a service's environment is, and why.

`env SERVICE` lists every variable with its source; `env SERVICE NAME` tells one
variable's story; `env --diff A B` compares two services; `env SERVICE --live` reads
the running process's environment. Secrets stay masked unless `--reveal`.
"""

from __future__ import annotations

import argparse

from devstack.commands import add_env_overrides


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "devstack env SERVICE [NAME] [options]\n"
        "       devstack env --diff SERVICE SERVICE [options]"
    )
    parser.add_argument("names", nargs="+", metavar="SERVICE [NAME]", help=argparse.SUPPRESS)
    parser.add_argument("--diff", action="store_true", help="compare two services")
    parser.add_argument("--live", action="store_true", help="the running process's environment")
    parser.add_argument("--reveal", action="store_true", help="show secret values")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--format",
        choices=("table", "dotenv", "shell"),
        default="table",
        help="dotenv or shell: print the environment for reuse (secrets only with --reveal)",
    )
    add_env_overrides(parser)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from devstack.commands import fail_on_env_errors, require_service, resolved
    from devstack.core import envreport
    from devstack.core.errors import DevstackError, Problem

    project, env = resolved(args)
    names = args.names
    if args.diff:
        if len(names) != 2:
            raise DevstackError([Problem("--diff needs two services: devstack env --diff A B")])
    elif len(names) > 2:
        raise DevstackError([Problem("give one service, and optionally one variable name")])
    count = 2 if args.diff else 1
    names = [require_service(project, name) for name in names[:count]] + names[count:]
    fail_on_env_errors(env)
    shown = envreport.Shown(project, reveal=args.reveal)
    if args.diff:
        diff = envreport.diff_services(env, names[0], names[1], shown)
        render = envreport.diff_json if args.json else envreport.diff_text
        print(render(diff, names[0], names[1]))
        return 0
    service = names[0]
    if args.live:
        from devstack.runtime.liveenv import live_env_report

        text, status = live_env_report(project, env, service, args.reveal)
        print(text)
        return status
    if len(names) == 2:
        print(envreport.variable_story(project, env, service, names[1], shown))
        shown_names = envreport.shown_variables(project, env.services[service])
        return 0 if names[1] in shown_names else 1
    service_env = env.services[service]
    if args.json:
        print(json.dumps(envreport.variables_json(service_env, shown), indent=2))
    elif args.format in ("dotenv", "shell"):
        # Without devstack's own layer (see `exportable`): the listing shows it, this not.
        values, left_out = envreport.exportable(service_env, shown)
        export = envreport.as_dotenv if args.format == "dotenv" else envreport.as_shell
        print(export(values), end="")
        note = envreport.left_out_note(left_out)
        if note:
            print(note, file=sys.stderr)
    else:
        print(_table(envreport.variable_rows(service_env, shown)))
    return 0


def _table(rows: list[tuple[str, str, str]]) -> str:
    # VALUE last: one long value (PATH) must not push every source off the screen.
    headers = ("NAME", "VALUE", "SOURCE")
    name_width = max(len(row[0]) for row in (headers, *rows))
    source_width = max(len(row[2]) for row in (headers, *rows))
    return "\n".join(
        f"{name.ljust(name_width)}  {source.ljust(source_width)}  {value}".rstrip()
        for name, value, source in (headers, *rows)
    )
