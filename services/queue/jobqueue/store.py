"""The jobs table: enqueue, atomic claim, finish, retry with backoff, cancel, reconcile.

Every state change is one short transaction on its own connection, so the API's
threads and the worker never share a connection. `BEGIN IMMEDIATE` takes the write
lock before reading, so two claimers can never pick the same job.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    signature TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    run_after REAL NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    result TEXT,
    error TEXT,
    parent_id INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (status, run_after, id);
"""

# queued -> running -> done | failed | cancelled | rejected; running -> queued on retry,
# on a graceful stop (released) and when its worker died (reconciled).
FINAL = ("done", "failed", "cancelled", "rejected")
Clock = Callable[[], float]
FollowUp = tuple[str, Any, str]  # task_id, payload, signature


@dataclass(frozen=True)
class Job:
    id: int
    task_id: str
    payload: Any
    signature: str
    status: str
    attempts: int
    max_attempts: int
    run_after: float
    cancel_requested: bool
    claimed_by: str | None
    result: Any
    error: str | None
    parent_id: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            task_id=row["task_id"],
            payload=json.loads(row["payload"]),
            signature=row["signature"],
            status=row["status"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            run_after=row["run_after"],
            cancel_requested=bool(row["cancel_requested"]),
            claimed_by=row["claimed_by"],
            result=json.loads(row["result"]) if row["result"] is not None else None,
            error=row["error"],
            parent_id=row["parent_id"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "cancel_requested": self.cancel_requested,
            "result": self.result,
            "error": self.error,
            "parent_id": self.parent_id,
        }


def backoff_delay(attempt: int, base: float, cap: float = 300.0) -> float:
    """Seconds before retry number `attempt` (1 = the first retry): base, 2*base, 4*base..."""
    return min(base * 2 ** (attempt - 1), cap)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_is_alive(claimed_by: str) -> bool:
    """Whether the worker named `claimed_by` (host:pid) still runs, as far as we can tell."""
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's worker: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Queue:
    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; callers open transactions explicitly."""
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- producers ---------------------------------------------------------------------

    def enqueue(
        self,
        task_id: str,
        payload: Any,
        signature: str,
        *,
        max_attempts: int = 3,
        parent_id: int | None = None,
    ) -> int:
        with self.transaction() as db:
            return self._insert(db, task_id, payload, signature, max_attempts, parent_id)

    def _insert(
        self,
        db: sqlite3.Connection,
        task_id: str,
        payload: Any,
        signature: str,
        max_attempts: int,
        parent_id: int | None,
    ) -> int:
        now = self.clock()
        cursor = db.execute(
            "INSERT INTO jobs (task_id, payload, signature, max_attempts, parent_id,"
            " run_after, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (task_id, json.dumps(payload), signature, max_attempts, parent_id, now, now, now),
        )
        return int(cursor.lastrowid or 0)

    def cancel(self, job_id: int) -> str | None:
        """Cancel a queued job now; ask a running one to stop. The status after, or None."""
        with self.transaction() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["status"] == "queued":
                self._set(db, job_id, status="cancelled", error="cancelled before it ran")
                return "cancelled"
            if row["status"] == "running":
                self._set(db, job_id, cancel_requested=1)
                return "cancelling"
            return str(row["status"])

    # -- the worker --------------------------------------------------------------------

    def claim(self, worker: str) -> Job | None:
        """The next due job, now `running` and owned by `worker`; None if nothing is due."""
        with self.transaction() as db:
            row = db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, claimed_by = ?,"
                " updated_at = ? WHERE id = (SELECT id FROM jobs WHERE status = 'queued'"
                " AND run_after <= ? ORDER BY run_after, id LIMIT 1) RETURNING *",
                (worker, self.clock(), self.clock()),
            ).fetchone()
        return Job.from_row(row) if row else None

    def finish(self, job_id: int, result: Any, follow_ups: Iterable[FollowUp] = ()) -> list[int]:
        """Mark done and enqueue its follow-up jobs in the same transaction: all or nothing."""
        with self.transaction() as db:
            self._set(db, job_id, status="done", result=json.dumps(result), claimed_by=None)
            return [
                self._insert(db, task_id, payload, signature, 3, job_id)
                for task_id, payload, signature in follow_ups
            ]

    def fail(
        self, job_id: int, error: str, backoff_base: float, *, retry: bool = True
    ) -> float | None:
        """Retry later (returns the delay in seconds) or, out of attempts or not worth
        retrying, fail (None)."""
        with self.transaction() as db:
            job = self._get(db, job_id)
            if not retry or job.attempts >= job.max_attempts:
                self._set(db, job_id, status="failed", error=error, claimed_by=None)
                return None
            delay = backoff_delay(job.attempts, backoff_base)
            self._set(
                db,
                job_id,
                status="queued",
                error=error,
                claimed_by=None,
                run_after=self.clock() + delay,
            )
            return delay

    def reject(self, job_id: int, error: str) -> None:
        """A job that must never run (bad signature, unknown task): final, no retry."""
        with self.transaction() as db:
            self._set(db, job_id, status="rejected", error=error, claimed_by=None)

    def mark_cancelled(self, job_id: int) -> None:
        with self.transaction() as db:
            self._set(db, job_id, status="cancelled", error="cancelled while running")

    def release(self, job_id: int) -> None:
        """Give a job back untouched (the worker is stopping); the attempt does not count.
        A job whose cancellation was asked for meanwhile is cancelled instead."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', error = 'cancelled while running',"
                " claimed_by = NULL, updated_at = ? WHERE id = ? AND status = 'running'"
                " AND cancel_requested",
                (self.clock(), job_id),
            )
            db.execute(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0),"
                " claimed_by = NULL, updated_at = ? WHERE id = ? AND status = 'running'",
                (self.clock(), job_id),
            )

    def is_cancel_requested(self, job_id: int) -> bool:
        with self.connect() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
            found = row.fetchone()
        return bool(found and found["cancel_requested"])

    def reconcile(self, is_alive: Callable[[str], bool] = process_is_alive) -> list[Job]:
        """Jobs left `running` by a worker that died: queued again, or failed when that
        was their last attempt (a task that kills its worker must not loop forever)."""
        with self.transaction() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            orphans = [Job.from_row(r) for r in rows if not is_alive(r["claimed_by"] or "")]
            for job in orphans:
                if job.attempts >= job.max_attempts:
                    error = f"its worker died during each of {job.attempts} attempts"
                    self._set(db, job.id, status="failed", error=error, claimed_by=None)
                else:
                    self._set(db, job.id, status="queued", claimed_by=None)
            return [self._get(db, job.id) for job in orphans]

    # -- reading -----------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def children(self, job_id: int) -> list[Job]:
        with self.connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE parent_id = ? ORDER BY id", (job_id,))
            return [Job.from_row(row) for row in rows.fetchall()]

    def recent(self, limit: int = 50) -> list[Job]:
        with self.connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
            return [Job.from_row(row) for row in rows.fetchall()]

    def _get(self, db: sqlite3.Connection, job_id: int) -> Job:
        return Job.from_row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def _set(self, db: sqlite3.Connection, job_id: int, **columns: Any) -> None:
        columns["updated_at"] = self.clock()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*columns.values(), job_id))
