"""`devstack start SERVICE...`: start services (stopped, or `autostart: false`) in the
running stack, with what they depend on, and wait until they are up."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from devstack.commands.restart import add_names

    add_names(parser, "start")


def run(args: argparse.Namespace) -> int:
    from devstack.commands.restart import act

    return act(args, "start")
