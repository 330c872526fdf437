"""`python3 -m worker`: settings from the environment, reconcile, then run until SIGTERM."""

from __future__ import annotations

import os
import signal
import sys

from jobqueue import ConfigError, Queue, settings_from_env

from worker.loop import Worker
from worker.registry import RegistryError, load_tasks


def log(message: str) -> None:
    print(message, flush=True)


def main() -> int:
    try:
        settings = settings_from_env(os.environ)
        registry = load_tasks()
    except (ConfigError, RegistryError) as error:
        print(f"worker cannot start: {error}", file=sys.stderr, flush=True)
        return 2
    worker = Worker(
        Queue(settings.db_path),
        registry,
        settings.secret_key,
        poll_interval=float(os.environ.get("JOBS_POLL_INTERVAL", "0.2")),
        backoff_base=float(os.environ.get("JOBS_BACKOFF_SECONDS", "1")),
        log=log,
    )
    # The handler only records; the loop stops claiming and the current task sees it.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stopping.set())
    worker.reconcile()
    log(f"Local worker ready: tasks {', '.join(sorted(registry))}; queue {settings.db_path}")
    worker.run()
    log("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
