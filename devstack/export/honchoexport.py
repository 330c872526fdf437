"""honcho's exporters, rendering devstack's templates instead of honcho's own.

honcho's `render(processes, context)` lays out the files (one per process, the
targets that group them); `get_template_loader` is its extension point, and
devstack's templates in `templates/<format>/` add what a Procfile lacks. honcho's
`File(name, content, executable)` becomes devstack's `File(name, content, mode)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devstack.export.stack import File


def render(format: str, processes: Sequence[Any], context: dict[str, Any]) -> list[File]:
    import jinja2
    from honcho.export import supervisord, systemd

    base = {"systemd": systemd.Export, "supervisord": supervisord.Export}[format]

    class Export(base):  # type: ignore[misc, valid-type]
        def get_template_loader(self) -> jinja2.BaseLoader:
            return jinja2.PackageLoader("devstack.export", f"templates/{format}")

    files = Export().render(list(processes), dict(context))
    # jinja2 drops a template's last newline; a text file ends with one.
    return [
        File(file.name, file.content.rstrip("\n") + "\n", 0o755 if file.executable else 0o644)
        for file in files
    ]
