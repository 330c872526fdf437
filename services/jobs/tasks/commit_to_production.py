"""Commit staged rows as users; each new user triggers a welcome email.

Idempotent: a row already committed (same import, same line) is skipped, so a job
that ran again after a crash creates no duplicates.
"""

from __future__ import annotations

from typing import Any

TASK_ID = "commit-to-production"

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    import_id INTEGER NOT NULL,
    line INTEGER NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (import_id, line)
)
"""


def run(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    import_id = payload["import_id"]
    db = ctx.db()
    try:
        db.execute(SCHEMA)
        created = []
        for row in payload["rows"]:
            cursor = db.execute(
                "INSERT OR IGNORE INTO users (import_id, line, email, name) VALUES (?, ?, ?, ?)",
                (import_id, row["line"], row["email"], row["name"]),
            )
            if cursor.rowcount:
                created.append(row)
    finally:
        db.close()
    for row in created:
        ctx.enqueue("send-welcome-email", {"email": row["email"], "name": row["name"]})
    ctx.log(f"{len(created)} users created from import {import_id}")
    return {"created": len(created), "skipped": len(payload["rows"]) - len(created)}
