"""`devstack mcp`: this repo's stack as tools for coding agents, an MCP server on stdio.

The MCP SDK is imported only here, when the command runs: `up` and the other commands
pay nothing for it.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Register it with an MCP client as the command `devstack -f /path/to/devstack.yaml mcp`."
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from devstack.core.config import find_config

    path = Path(args.config_file).resolve() if args.config_file else find_config(Path.cwd())
    from devstack.mcp import server as mcp_server

    return mcp_server.serve(path)
