"""Validate an imported CSV of users, stage the good rows, then commit them."""

from __future__ import annotations

import csv
import io
from typing import Any

TASK_ID = "validate-and-stage"
REQUIRED_COLUMNS = ("email", "name")


def run(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    reader = csv.DictReader(io.StringIO(payload["csv"]))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ctx.fail(f"the CSV has no {', '.join(missing)} column (header: {reader.fieldnames})")
    staged, invalid = [], []
    # A delay per row makes the import slow enough to watch (and to restart mid-way).
    delay = float(payload.get("delay_per_row", 0))
    for number, row in enumerate(reader, start=2):
        ctx.sleep(delay)
        problem = row_problem(row)
        if problem:
            invalid.append({"line": number, "error": problem})
        else:
            staged.append(
                {"line": number, "email": row["email"].strip(), "name": row["name"].strip()}
            )
    ctx.log(f"{len(staged)} rows staged, {len(invalid)} invalid")
    if staged:
        ctx.enqueue("commit-to-production", {"import_id": ctx.job.id, "rows": staged})
    return {"staged": len(staged), "invalid": invalid}


def row_problem(row: dict[str, str]) -> str | None:
    email = (row.get("email") or "").strip()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        return f"not an email address: {email!r}"
    if not (row.get("name") or "").strip():
        return "name is empty"
    return None
