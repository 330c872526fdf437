"""`devstack export FORMAT`: the stack as compose, kubernetes, systemd or supervisord files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.commands import add_env_overrides

if TYPE_CHECKING:
    from devstack.core.model import Project
    from devstack.export.stack import File

FORMATS = ("compose", "kubernetes", "systemd", "supervisord")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, metavar="FORMAT", help=" | ".join(FORMATS))
    parser.add_argument(
        "names", nargs="*", metavar="SERVICE", help="only these and what they depend on"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="where to write (default: .devstack/export/FORMAT in the repo, private)",
    )
    parser.add_argument("--image", help="image for services without `image:` (compose, kubernetes)")
    parser.add_argument(
        "--name", dest="app", help="project name (default: the repo directory's name)"
    )
    add_env_overrides(parser)


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from devstack.commands import fail_on_env_errors, require_service, resolved
    from devstack.export.formats import exporter
    from devstack.export.stack import build_stack

    project, env = resolved(args)
    for name in args.names:
        require_service(project, name)
    fail_on_env_errors(env)
    default = project.state_dir / "export" / args.format
    output = Path(os.path.abspath(args.output)) if args.output else default
    stack = build_stack(project, env, args.names, app=args.app, image=args.image, output_dir=output)
    export = exporter(args.format)(stack)
    try:
        written = _write(project, export.files, output, private=args.output is None)
    except OSError as error:
        from devstack.core.errors import DevstackError

        where = error.filename or output
        raise DevstackError.single(
            f"cannot write {where}: {error.strerror}", hint="choose another folder with -o DIR"
        ) from None
    for path in written:
        print(project.display_path(path))
    notes = list(export.notes)
    if stack.left_to_target:
        names = ", ".join(stack.left_to_target)
        notes.append(f"{names} (system basics from your shell) are left to the target")
    if notes:
        print(f"not expressed in {args.format}:", file=sys.stderr)
        for note in notes:
            print(f"  - {note}", file=sys.stderr)
    return 0


def _write(project: Project, files: tuple[File, ...], output: Path, *, private: bool) -> list[Path]:
    """Write every file whole; env and secret files exactly 0600."""
    import os

    from devstack.export.stack import PRIVATE
    from devstack.runtime.files import write_atomically

    if private:  # .devstack/export/FORMAT: private, like everything devstack keeps there
        for folder in (project.state_dir, output.parent, output):
            folder.mkdir(mode=0o700, exist_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for file in files:
        path = output / file.name
        write_atomically(path, file.content, file.mode)
        if file.mode == PRIVATE:
            os.chmod(path, PRIVATE)  # exactly 0600, whatever the umask
        written.append(path)
    return written
