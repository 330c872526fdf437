"""Env example files (`.env.example` and kin): which real file each stands for, and the
names it lists with their lines (issue 12 item 5).

A repo documents its variables in `.env.example`, `.env.sample`, `.env-example`,
`.env-template`, `.env.template`, `.env.dist` or `.env.<mode>.example`; a new clone
copies it to `.env`. Doctor uses them to say which env file is missing (and the `cp`
that creates it) and which listed names are not set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devstack.core.envfile import read_env_file

SUFFIXES = (".example", ".sample", "-example", "-template", ".template", ".dist")


@dataclass(frozen=True)
class ExampleFile:
    """`apps/web/.env.example`, standing for `apps/web/.env`, listing NAME -> line."""

    path: Path
    display: str
    target: Path
    target_display: str
    names: dict[str, int]


def example_for(target: Path) -> Path | None:
    """The example file that stands for `target` (`.env` -> `.env.example`), if any."""
    for suffix in SUFFIXES:
        candidate = target.with_name(target.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def target_name(filename: str) -> str | None:
    """`.env.example` -> `.env`, `.env.local.sample` -> `.env.local`; None if no example."""
    if not filename.startswith(".env"):
        return None
    for suffix in SUFFIXES:
        if filename.endswith(suffix) and len(filename) > len(suffix):
            target = filename[: -len(suffix)]
            return target if target.startswith(".env") else None
    return None


def examples_in(directory: Path, display_dir: str) -> list[ExampleFile]:
    """Every example file directly in `directory`, by name."""
    try:
        children = sorted(child.name for child in directory.iterdir())
    except OSError:
        return []
    found = []
    for name in children:
        target = target_name(name)
        if target is None or not (directory / name).is_file():
            continue
        display = f"{display_dir}/{name}" if display_dir not in ("", ".") else name
        target_display = display[: -len(name)] + target
        env_file = read_env_file(directory / name, display)
        names = {e.name: e.location.line or 0 for e in env_file.entries}
        found.append(
            ExampleFile(directory / name, display, directory / target, target_display, names)
        )
    return found
