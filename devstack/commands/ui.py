"""`devstack ui`: a full-screen view of the running stack (issue 17).

It talks to the running `devstack up` (or `up -d`) through its control socket, so
it can be opened from any terminal, several at once, and quitting it stops nothing.
Textual is imported here, only when the UI is asked for.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    # `up --ui` runs the UI as a child that must end with the stack it shows.
    parser.add_argument("--exit-with-stack", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from devstack.core.config import find_config
    from devstack.core.errors import DevstackError
    from devstack.runtime import control

    config_file = Path(args.config_file) if args.config_file else find_config(Path.cwd())
    root = config_file.resolve().parent
    if not control.is_running(root):
        raise DevstackError.single(
            f"no devstack up is running in {root}",
            hint="start one with `devstack up -d` (or `devstack up --ui` for both at once)",
            exit_status=1,
            code="not-running",
        )
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DevstackError.single(
            "devstack ui needs a terminal", hint="`devstack ps` and `devstack logs -f` do not"
        )
    from devstack.ui.app import DevstackApp
    from devstack.ui.stack import StackClient

    app = DevstackApp(
        StackClient(root),
        config_file=config_file,
        tty_services=_tty_services(config_file),
        read_tty_services=lambda: _tty_services(config_file),
        quit_with_stack=args.exit_with_stack,
    )
    return app.run() or 0


def _tty_services(config_file: Path) -> set[str]:
    """Services started with `tty: true` (they take typed keys); none if the config
    no longer loads: the UI still shows the stack that runs."""
    from devstack.core.config import load_project
    from devstack.core.errors import DevstackError

    try:
        project = load_project(config_file)
    except DevstackError:
        return set()
    return {name for name, service in project.services.items() if service.tty}
