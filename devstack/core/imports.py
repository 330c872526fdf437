"""Importing a module without optional dependencies it can do without (issue 16).

Some modules try `import x` and carry on without x when it is missing: asyncio without
`ssl` (then it offers no TLS), pathspec without `typing_extensions` (its typing stubs,
which pathspec also defines itself). What asyncio imports stays in the long-lived `up`
for good, and what pathspec imports costs the child that compiles the watch rules its
time (core/globs.py), so `import_without` imports such a module with x marked missing:
a `None` in `sys.modules`, which the import system documents as "this import fails"
(ModuleNotFoundError). The mark is taken away at once, so `import x` works again; only
the module imported meanwhile did without. A dependency imported already is used.

Not safe against another thread importing a marked name at the same moment: used where
nothing else imports it (`up` imports neither ssl nor typing_extensions elsewhere).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType


def import_without(name: str, *missing: str) -> ModuleType:
    """Module `name`, imported with `missing` (those not imported yet) not importable."""
    if name in sys.modules:
        return sys.modules[name]
    marked = [dependency for dependency in missing if dependency not in sys.modules]
    for dependency in marked:
        sys.modules[dependency] = None  # type: ignore[assignment]  # the import system's "missing"
    try:
        return importlib.import_module(name)
    finally:
        for dependency in marked:
            if dependency in sys.modules and sys.modules[dependency] is None:
                del sys.modules[dependency]
