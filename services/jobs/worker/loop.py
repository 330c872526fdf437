"""The worker loop: claim a job, check its signature, run its task, record the outcome.

One line per job state change. A stop request (SIGTERM) ends the loop after the
current job: a task that waits or checkpoints gives its job back to the queue at
once, so a restart loses nothing and runs nothing twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType

from jobqueue import Job, Queue, rejection_message, verify, worker_name

from worker.context import Cancelled, Interrupted, TaskContext, TaskFailed
from worker.registry import unknown_task_message


class Worker:
    def __init__(
        self,
        queue: Queue,
        registry: dict[str, ModuleType],
        secret_key: str,
        *,
        poll_interval: float,
        backoff_base: float,
        log: Callable[[str], None],
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.secret_key = secret_key
        self.poll_interval = poll_interval
        self.backoff_base = backoff_base
        self.log = log
        self.name = worker_name()
        self.stopping = threading.Event()

    def reconcile(self) -> None:
        for job in self.queue.reconcile():
            if job.status == "queued":
                self.log(f"job {job.id} requeued: its worker died while running it")
            else:
                self.log(f"job {job.id} failed: {job.error}")

    def run(self) -> None:
        while not self.stopping.is_set():
            job = self.queue.claim(self.name)
            if job is None:
                # SQLite has no notifications; a short wait that a stop request cuts short.
                self.stopping.wait(self.poll_interval)
            else:
                self.handle(job)

    def handle(self, job: Job) -> None:
        self.log(
            f"job {job.id} claimed: {job.task_id} (attempt {job.attempts} of {job.max_attempts})"
        )
        if not verify(self.secret_key, job.task_id, job.payload, job.signature):
            message = rejection_message(job.id)
            self.queue.reject(job.id, message)
            self.log(message)
            return
        task = self.registry.get(job.task_id)
        if task is None:
            message = unknown_task_message(job.task_id, self.registry)
            self.queue.reject(job.id, message)
            self.log(f"job {job.id} rejected: {message}")
            return
        self.execute(job, task)

    def execute(self, job: Job, task: ModuleType) -> None:
        context = TaskContext(self.queue, job, self.secret_key, self.stopping, self.log)
        try:
            result = task.run(job.payload, context)
        except Cancelled:
            self.queue.mark_cancelled(job.id)
            self.log(f"job {job.id} cancelled")
        except Interrupted:
            self.queue.release(job.id)
            self.log(f"job {job.id} requeued: the worker is stopping")
        except TaskFailed as error:
            self.queue.fail(job.id, str(error), self.backoff_base, retry=False)
            self.log(f"job {job.id} failed: {error}")
        except Exception as error:
            self.retry_or_fail(job, f"{type(error).__name__}: {error}")
        else:
            children = self.queue.finish(job.id, result, context.follow_ups)
            then = f"; enqueued {', '.join(f'job {i}' for i in children)}" if children else ""
            self.log(f"job {job.id} done: {job.task_id}{then}")

    def retry_or_fail(self, job: Job, error: str) -> None:
        delay = self.queue.fail(job.id, error, self.backoff_base)
        if delay is None:
            self.log(f"job {job.id} failed after {job.attempts} attempts: {error}")
        else:
            self.log(f"job {job.id} failed: {error}; retrying in {delay:g}s")
