"""What a running task may do: check for cancellation, wait, log, enqueue follow-ups."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from jobqueue import Job, Queue, sign

CANCEL_CHECK_SECONDS = 0.2


class Cancelled(Exception):
    """The job was cancelled while running."""


class Interrupted(Exception):
    """The worker is stopping: give the job back to the queue."""


class TaskFailed(Exception):
    """A failure that retrying cannot fix (bad input): the job fails at once."""


class TaskContext:
    def __init__(
        self,
        queue: Queue,
        job: Job,
        secret_key: str,
        stopping: threading.Event,
        log: Callable[[str], None],
    ) -> None:
        self.queue = queue
        self.job = job
        self.secret_key = secret_key
        self.stopping = stopping
        self._log = log
        self.follow_ups: list[tuple[str, Any, str]] = []

    def checkpoint(self) -> None:
        """Raise if the worker is stopping or the job was cancelled: call it between steps."""
        if self.stopping.is_set():
            raise Interrupted
        if self.queue.is_cancel_requested(self.job.id):
            raise Cancelled

    def sleep(self, seconds: float) -> None:
        """Wait, but wake at once when the worker is asked to stop, and soon after the
        job is cancelled (the flag lives in the database, so it is read every slice)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.stopping.wait(min(left, CANCEL_CHECK_SECONDS))
            self.checkpoint()
        self.checkpoint()

    def enqueue(self, task_id: str, payload: Any) -> None:
        """A job to enqueue when (and only if) this one completes."""
        self.follow_ups.append((task_id, payload, sign(self.secret_key, task_id, payload)))

    def fail(self, reason: str) -> TaskFailed:
        return TaskFailed(reason)

    def log(self, message: str) -> None:
        self._log(f"job {self.job.id}: {message}")

    def db(self) -> sqlite3.Connection:
        """A connection to the jobs database (autocommit), for tasks that store data."""
        connection = sqlite3.connect(self.queue.path, timeout=10, isolation_level=None)
        connection.row_factory = sqlite3.Row
        return connection
