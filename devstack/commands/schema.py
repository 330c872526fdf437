"""`devstack schema`: print the JSON Schema of devstack.yaml."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Editors: save it (devstack schema > devstack.schema.json) and add "
        "`# yaml-language-server: $schema=devstack.schema.json` at the top of devstack.yaml."
    )


def run(args: argparse.Namespace) -> int:
    import json

    from devstack.core.schema import devstack_schema

    print(json.dumps(devstack_schema(), indent=2))
    return 0
