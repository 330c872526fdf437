"""The example stack under the real `devstack up`: the import job chain end to end,
a worker restart mid-job, cancellation, a mis-keyed job, and Ctrl+C leaving nothing."""

from __future__ import annotations

import json
import re
import sys

from tests.e2e.conftest import REPO, Stack, seen
from tests.support import run_cli, wait_until

sys.path.insert(0, str(REPO / "services" / "queue"))

from jobqueue import Queue, sign

CSV = "email,name\nada@example.com,Ada\nnot-an-email,Bob\ngrace@example.com,Grace\n"
THREE = "email,name\nann@example.com,Ann\nben@example.com,Ben\ncy@example.com,Cy\n"
READY = r"^api +\| api listening"  # api starts only once jobs and email are ready


def test_a_csv_import_runs_the_job_chain_and_the_mail_is_caught(stack: Stack) -> None:
    with stack.up() as up:
        up.wait_for(READY)
        job_id = stack.post_csv(CSV)
        staged = stack.wait_job(job_id, "done")
        assert staged["result"] == {
            "staged": 2,
            "invalid": [{"line": 3, "error": "not an email address: 'not-an-email'"}],
        }
        [commit_id] = staged["children"]
        commit = stack.wait_job(commit_id, "done")
        assert commit["result"] == {"created": 2, "skipped": 0}
        messages = stack.wait_mail_to("ada@example.com", "grace@example.com")
        assert sorted(m["subject"] for m in messages) == ["Welcome, Ada!", "Welcome, Grace!"]
        seen(up, rf"^jobs +\| job {job_id} done: validate-and-stage; enqueued job {commit_id}")
        seen(up, r"^email +\| caught message \d+ from welcome@devstack.example to ada@")

        event = json.dumps({"email": "linus@example.com", "name": "Linus"}).encode()
        [welcome_id] = stack.request("POST", "api", "/events/user.created", event)["job_ids"]
        stack.wait_job(welcome_id, "done")
        stack.wait_mail_to("linus@example.com")
        stack.interrupt(up)


def test_editing_a_task_mid_job_restarts_the_worker_and_the_job_completes_once(
    stack: Stack,
) -> None:
    with stack.up() as up:
        up.wait_for(READY)
        job_id = stack.post_csv(THREE, "?delay_per_row=1.5")  # slow enough to edit mid-job
        seen(up, rf"^jobs +\| job {job_id} claimed")
        task = stack.root / "services" / "jobs" / "tasks" / "validate_and_stage.py"
        task.write_text(task.read_text() + "\n# edited while a job runs\n")

        seen(up, rf"^jobs +\| job {job_id} requeued: the worker is stopping")
        wait_until(
            lambda: len(seen(up, r"^jobs +\| Local worker ready")) == 2, what="worker restart"
        )
        staged = stack.wait_job(job_id, "done")
        [commit_id] = staged["children"]
        stack.wait_job(commit_id, "done")
        stack.wait_mail_to("ann@example.com", "ben@example.com", "cy@example.com")
        for welcome_id in stack.job(commit_id)["children"]:
            stack.wait_job(welcome_id, "done")
        assert len(seen(up, rf"^jobs +\| job {job_id} claimed")) == 2
        assert len(seen(up, rf"^jobs +\| job {job_id} done")) == 1
        assert len(stack.messages()) == 3  # nothing sent twice
        stack.interrupt(up)


def test_a_cancelled_job_stops_and_the_worker_carries_on(stack: Stack) -> None:
    with stack.up() as up:
        up.wait_for(READY)
        job_id = stack.post_csv(THREE, "?delay_per_row=30")
        seen(up, rf"^jobs +\| job {job_id} claimed")
        answer = stack.request("POST", "api", f"/jobs/{job_id}/cancel")
        assert answer == {"job_id": job_id, "status": "cancelling"}
        seen(up, rf"^jobs +\| job {job_id} cancelled")
        cancelled = stack.wait_job(job_id, "cancelled")
        assert cancelled["children"] == []

        next_id = stack.post_csv(CSV)
        stack.wait_job(next_id, "done")
        stack.interrupt(up)


def test_a_mis_keyed_worker_is_refused_and_a_mis_signed_job_rejected(stack: Stack) -> None:
    jobs_env = stack.root / "services" / "jobs" / ".env"
    original = jobs_env.read_text()
    other_key = "dev_only_another_key_93e1"
    jobs_env.write_text(original + f"JOBS_SECRET_KEY={other_key}\n")
    line = len(original.splitlines()) + 1

    refused = run_cli("up", cwd=stack.root, env=stack.env)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1, said
    assert "JOBS_SECRET_KEY differs between" in said
    assert f"services/jobs/.env:{line}" in said
    assert "devstack env --diff" in said
    assert other_key not in said and "dev_only_jobs_secret" not in said

    jobs_env.write_text(original)
    with stack.up() as up:
        up.wait_for(READY)
        # What an API holding another key would enqueue.
        payload = {"email": "mallory@example.com", "name": "Mallory"}
        queue = Queue(stack.root / "var" / "jobs.sqlite3")
        job_id = queue.enqueue(
            "send-welcome-email", payload, sign(other_key, "send-welcome-email", payload)
        )
        message = (
            f"job {job_id} rejected: signature does not match JOBS_SECRET_KEY (the API and "
            "the worker disagree on the secret; run `devstack env --diff api jobs`)"
        )
        seen(up, rf"^jobs +\| {re.escape(message)}")
        assert stack.wait_job(job_id, "rejected")["error"] == message
        assert stack.messages() == []
        stack.interrupt(up)
