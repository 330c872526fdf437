"""The example stack's job queue: SQLite is the source of truth, shared by api and jobs.

The API only enqueues (by task id, signed with JOBS_SECRET_KEY); the worker claims,
runs, retries, cancels and reconciles. Nothing here runs task code.
"""

from jobqueue.settings import ConfigError, Settings, settings_from_env
from jobqueue.signing import rejection_message, sign, verify
from jobqueue.store import Job, Queue, backoff_delay, process_is_alive, worker_name

__all__ = [
    "ConfigError",
    "Job",
    "Queue",
    "Settings",
    "backoff_delay",
    "process_is_alive",
    "rejection_message",
    "settings_from_env",
    "sign",
    "verify",
    "worker_name",
]
