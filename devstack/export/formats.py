"""FORMAT -> its exporter, imported only when chosen (kubernetes does not need jinja2)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from devstack.export.stack import Export, Stack

_MODULES = {
    "compose": ("devstack.export.compose", "export_compose"),
    "kubernetes": ("devstack.export.kubernetes", "export_kubernetes"),
    "systemd": ("devstack.export.systemd", "export_systemd"),
    "supervisord": ("devstack.export.supervisord", "export_supervisord"),
}


def exporter(format: str) -> Callable[[Stack], Export]:
    module, function = _MODULES[format]
    found: Callable[[Stack], Export] = getattr(importlib.import_module(module), function)
    return found
