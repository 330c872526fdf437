"""HMAC-SHA256 signatures that prove a job was enqueued by someone holding JOBS_SECRET_KEY."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


def canonical(task_id: str, payload: Any) -> bytes:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"{task_id}\n{body}".encode()


def sign(key: str, task_id: str, payload: Any) -> str:
    return hmac.new(key.encode(), canonical(task_id, payload), hashlib.sha256).hexdigest()


def verify(key: str, task_id: str, payload: Any, signature: str) -> bool:
    return hmac.compare_digest(sign(key, task_id, payload), signature)


def rejection_message(job_id: int) -> str:
    """The error stored on a job whose signature was made with another key."""
    return (
        f"job {job_id} rejected: signature does not match JOBS_SECRET_KEY "
        "(the API and the worker disagree on the secret; run `devstack env --diff api jobs`)"
    )
