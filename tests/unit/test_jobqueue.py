"""The example stack's SQLite job queue (services/queue/jobqueue), on real database files."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
sys.path[:0] = [str(SERVICES / "queue"), str(SERVICES / "jobs")]

from jobqueue import (  # noqa: E402
    ConfigError,
    Queue,
    backoff_delay,
    rejection_message,
    settings_from_env,
    sign,
    verify,
)
from worker.loop import Worker  # noqa: E402

KEY = "dev_key_for_tests"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Queue:
    return Queue(tmp_path / "var" / "jobs.sqlite3", clock=clock)


def enqueue(queue: Queue, task_id: str = "send-welcome-email", **kwargs: object) -> int:
    payload = {"email": "ada@example.com"}
    return queue.enqueue(task_id, payload, sign(KEY, task_id, payload), **kwargs)  # type: ignore[arg-type]


def test_creates_the_directory_and_uses_wal(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "deep" / "jobs.sqlite3")
    with queue.connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_claim_takes_the_oldest_due_job_and_counts_the_attempt(queue: Queue) -> None:
    first, second = enqueue(queue), enqueue(queue)
    job = queue.claim("w1")
    assert job is not None
    assert (job.id, job.status, job.attempts, job.claimed_by) == (first, "running", 1, "w1")
    assert queue.claim("w1").id == second  # type: ignore[union-attr]
    assert queue.claim("w1") is None


def test_two_claimers_never_get_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    ids = [enqueue(Queue(path)) for _ in range(60)]
    claimed: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def drain(name: str) -> None:
        mine = Queue(path)
        while (job := mine.claim(name)) is not None:
            claimed[name].append(job.id)

    threads = [threading.Thread(target=drain, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    everything = [job_id for jobs in claimed.values() for job_id in jobs]
    assert sorted(everything) == ids  # each job exactly once


def test_finish_stores_the_result_and_enqueues_follow_ups_together(queue: Queue) -> None:
    parent = enqueue(queue, "validate-and-stage")
    queue.claim("w1")
    payload = {"rows": 2}
    children = queue.finish(
        parent, {"valid": 2}, [("commit-to-production", payload, sign(KEY, "x", payload))]
    )
    done = queue.get(parent)
    assert done is not None and (done.status, done.result) == ("done", {"valid": 2})
    assert [child.id for child in queue.children(parent)] == children
    assert queue.get(children[0]).parent_id == parent  # type: ignore[union-attr]


def test_failures_retry_with_exponential_backoff_then_fail(queue: Queue, clock: FakeClock) -> None:
    job_id = enqueue(queue, max_attempts=3)
    delays = []
    for _ in range(2):
        queue.claim("w1")
        delays.append(queue.fail(job_id, "SMTP refused", backoff_base=1.0))
        assert queue.claim("w1") is None  # not due yet
        clock.now += delays[-1]  # type: ignore[operator]
    assert delays == [1.0, 2.0]
    job = queue.claim("w1")
    assert job is not None and job.attempts == 3
    assert queue.fail(job_id, "SMTP refused", backoff_base=1.0) is None
    failed = queue.get(job_id)
    assert failed is not None and (failed.status, failed.error) == ("failed", "SMTP refused")


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff_delay(n, 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(30, 1.0, cap=60.0) == 60.0


def test_a_queued_job_is_cancelled_at_once(queue: Queue) -> None:
    job_id = enqueue(queue)
    assert queue.cancel(job_id) == "cancelled"
    assert queue.claim("w1") is None
    assert queue.get(job_id).status == "cancelled"  # type: ignore[union-attr]


def test_a_running_job_is_asked_to_stop(queue: Queue) -> None:
    job_id = enqueue(queue)
    queue.claim("w1")
    assert not queue.is_cancel_requested(job_id)
    assert queue.cancel(job_id) == "cancelling"
    assert queue.is_cancel_requested(job_id)
    queue.mark_cancelled(job_id)
    assert queue.get(job_id).status == "cancelled"  # type: ignore[union-attr]
    assert queue.cancel(job_id) == "cancelled"  # cancelling twice changes nothing
    assert queue.cancel(9999) is None


def test_reconcile_requeues_jobs_of_a_dead_worker_only(queue: Queue) -> None:
    orphan, alive = enqueue(queue), enqueue(queue)
    queue.claim("dead-worker")
    queue.claim("live-worker")
    requeued = queue.reconcile(is_alive=lambda name: name == "live-worker")
    assert [(job.id, job.status) for job in requeued] == [(orphan, "queued")]
    assert queue.get(alive).status == "running"  # type: ignore[union-attr]
    again = queue.claim("w2")
    assert again is not None and (again.id, again.attempts) == (orphan, 2)


def test_reconcile_fails_a_job_that_killed_its_worker_every_time(queue: Queue) -> None:
    job_id = enqueue(queue, max_attempts=1)
    queue.claim("dead-worker")
    [job] = queue.reconcile(is_alive=lambda name: False)
    assert (job.id, job.status) == (job_id, "failed")
    assert "worker died" in (job.error or "")


def test_release_gives_the_job_back_without_counting_the_attempt(queue: Queue) -> None:
    job_id = enqueue(queue)
    queue.claim("w1")
    queue.release(job_id)
    job = queue.claim("w2")
    assert job is not None and (job.id, job.attempts) == (job_id, 1)


def test_signatures_are_checked_against_the_key() -> None:
    payload = {"csv": "email\nada@example.com\n"}
    signature = sign(KEY, "validate-and-stage", payload)
    assert verify(KEY, "validate-and-stage", payload, signature)
    assert not verify("another_key", "validate-and-stage", payload, signature)
    assert not verify(KEY, "commit-to-production", payload, signature)
    assert not verify(KEY, "validate-and-stage", {"csv": "tampered"}, signature)


def test_a_rejected_job_keeps_a_clear_error_and_never_runs(queue: Queue) -> None:
    job_id = enqueue(queue)
    queue.claim("w1")
    queue.reject(job_id, rejection_message(job_id))
    job = queue.get(job_id)
    assert job is not None and job.status == "rejected"
    assert job.error == (
        f"job {job_id} rejected: signature does not match JOBS_SECRET_KEY (the API and the "
        "worker disagree on the secret; run `devstack env --diff api jobs`)"
    )
    assert queue.claim("w1") is None


def test_settings_say_what_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"JOBS_DB is not set.*JOBS_SECRET_KEY is not set"):
        settings_from_env({})
    settings = settings_from_env({"JOBS_DB": "var/jobs.sqlite3", "JOBS_SECRET_KEY": KEY})
    assert (str(settings.db_path), settings.secret_key) == ("var/jobs.sqlite3", KEY)


def test_release_of_a_job_asked_to_cancel_cancels_it(queue: Queue) -> None:
    job_id = enqueue(queue)
    queue.claim("w1")
    queue.cancel(job_id)
    queue.release(job_id)
    assert queue.get(job_id).status == "cancelled"  # type: ignore[union-attr]
    assert queue.claim("w2") is None


# -- the worker loop on the same real queue --------------------------------------------


def task_module(task_id: str, run: object) -> types.ModuleType:
    module = types.ModuleType(task_id)
    module.TASK_ID = task_id  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    return module


def make_worker(queue: Queue, *tasks: types.ModuleType) -> tuple[Worker, list[str]]:
    said: list[str] = []
    registry = {module.TASK_ID: module for module in tasks}  # type: ignore[attr-defined]
    worker = Worker(queue, registry, KEY, poll_interval=0.01, backoff_base=2.0, log=said.append)
    return worker, said


def test_worker_runs_the_task_and_enqueues_its_follow_ups_on_success(queue: Queue) -> None:
    def run(payload: dict[str, str], ctx: object) -> dict[str, str]:
        ctx.enqueue("send-welcome-email", payload)  # type: ignore[attr-defined]
        return {"ok": payload["email"]}

    worker, said = make_worker(queue, task_module("import", run))
    job_id = enqueue(queue, "import")
    worker.handle(queue.claim(worker.name))  # type: ignore[arg-type]
    job = queue.get(job_id)
    assert job is not None and (job.status, job.result) == ("done", {"ok": "ada@example.com"})
    [child] = queue.children(job_id)
    assert said[-1] == f"job {job_id} done: import; enqueued job {child.id}"
    assert verify(KEY, child.task_id, child.payload, child.signature)


def test_worker_retries_a_failing_task_with_backoff(queue: Queue) -> None:
    def run(payload: object, ctx: object) -> None:
        raise ConnectionRefusedError("SMTP is down")

    worker, said = make_worker(queue, task_module("send-welcome-email", run))
    job_id = enqueue(queue)
    worker.handle(queue.claim(worker.name))  # type: ignore[arg-type]
    assert said[-1] == (
        f"job {job_id} failed: ConnectionRefusedError: SMTP is down; retrying in 2s"
    )
    assert queue.get(job_id).status == "queued"  # type: ignore[union-attr]


def test_worker_rejects_a_job_signed_with_another_key_without_running_it(queue: Queue) -> None:
    ran = []
    worker, said = make_worker(queue, task_module("send-welcome-email", ran.append))
    payload = {"email": "ada@example.com"}
    job_id = queue.enqueue("send-welcome-email", payload, sign("other", "x", payload))
    worker.handle(queue.claim(worker.name))  # type: ignore[arg-type]
    assert ran == []
    assert said[-1] == rejection_message(job_id)
    assert queue.get(job_id).status == "rejected"  # type: ignore[union-attr]


def test_worker_rejects_an_unknown_task_id_naming_the_closest(queue: Queue) -> None:
    worker, said = make_worker(queue, task_module("send-welcome-email", print))
    job_id = enqueue(queue, "send-welcome-mail")
    worker.handle(queue.claim(worker.name))  # type: ignore[arg-type]
    assert said[-1] == (
        f"job {job_id} rejected: no task registered under 'send-welcome-mail' "
        "(known: send-welcome-email); did you mean 'send-welcome-email'?"
    )


def test_a_stopping_worker_gives_the_running_job_back(queue: Queue) -> None:
    def run(payload: object, ctx: object) -> None:
        worker.stopping.set()  # as SIGTERM's handler does
        ctx.sleep(60)  # type: ignore[attr-defined]

    worker, said = make_worker(queue, task_module("slow", run))
    job_id = enqueue(queue, "slow")
    worker.run()  # returns: the stop request ends the loop after the job
    assert said[-1] == f"job {job_id} requeued: the worker is stopping"
    job = queue.get(job_id)
    assert job is not None and (job.status, job.attempts) == ("queued", 0)
