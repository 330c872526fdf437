"""Where a run's log files are: one per service, `<repo>/.devstack/logs/<name>.log`.

`up` writes them (runtime/output.py, which also rotates them); `devstack logs` and
the control socket's `logs` read their tails. Only this module knows the layout.
"""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".devstack"  # the repo's private state directory (Project.state_dir)


def log_dir(root: Path) -> Path:
    """The directory of the log files of the repo at `root`."""
    return root / STATE_DIR / "logs"


def log_name(name: str) -> str:
    """The name of service `name`'s log file in a `log_dir`."""
    return f"{name}.log"


def rotated_name(log: str) -> str:
    """What a log file (by name) is renamed to once it is full: one generation kept."""
    return log + ".1"


def log_file(directory: Path, name: str) -> Path:
    """The log file of service `name` in `directory` (a `log_dir`)."""
    return directory / log_name(name)


def logged_services(directory: Path) -> list[str]:
    """The services that have a log file in `directory`, by name."""
    return sorted(path.name.removesuffix(".log") for path in directory.glob(log_name("*")))
