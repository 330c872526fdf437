"""The queue's settings from the environment, with messages that say what to fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """A missing or bad setting; the message is for people."""


@dataclass(frozen=True)
class Settings:
    db_path: Path
    secret_key: str


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    problems = []
    db = environ.get("JOBS_DB", "")
    key = environ.get("JOBS_SECRET_KEY", "")
    if not db:
        problems.append("JOBS_DB is not set: set it in devstack.yaml (e.g. JOBS_DB=var/jobs.db)")
    if not key:
        problems.append(
            "JOBS_SECRET_KEY is not set: define it in the root .env and list it in this "
            "service's env (see `devstack env <service> JOBS_SECRET_KEY`)"
        )
    if problems:
        raise ConfigError("; ".join(problems))
    return Settings(Path(db), key)
