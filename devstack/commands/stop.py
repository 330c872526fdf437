"""`devstack stop SERVICE...`: stop services of the running stack until started again."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from devstack.commands.restart import add_names

    add_names(parser, "stop")


def run(args: argparse.Namespace) -> int:
    from devstack.commands.restart import act

    return act(args, "stop")
