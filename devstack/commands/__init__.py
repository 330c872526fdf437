"""One module per CLI command; shared helpers for finding the project."""

from __future__ import annotations

import argparse
from pathlib import Path

from devstack.model import Project


def project_from_args(args: argparse.Namespace) -> Project:
    """The project named by -f, or found by walking up from the current directory."""
    from devstack.config import find_config, load_project

    path = Path(args.config_file) if args.config_file else find_config(Path.cwd())
    return load_project(path)
