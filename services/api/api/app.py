"""Routes: GET /health, POST /imports, GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel,
POST /events/{name}."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jobqueue import Queue, sign

# Which jobs an event triggers, by task id (the seeds' `user.created` -> welcome email).
EVENT_TASKS = {"user.created": ("send-welcome-email",)}
JOB_PATH = re.compile(r"/jobs/(\d+)\Z")
CANCEL_PATH = re.compile(r"/jobs/(\d+)/cancel\Z")
EVENT_PATH = re.compile(r"/events/([\w.-]+)\Z")


class Api:
    def __init__(self, queue: Queue, secret_key: str, max_csv_bytes: int) -> None:
        self.queue = queue
        self.secret_key = secret_key
        self.max_csv_bytes = max_csv_bytes

    def enqueue(self, task_id: str, payload: Any) -> int:
        return self.queue.enqueue(task_id, payload, sign(self.secret_key, task_id, payload))

    def job(self, job_id: int) -> tuple[int, Any]:
        job = self.queue.get(job_id)
        if job is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no job {job_id}"}
        children = [child.id for child in self.queue.children(job_id)]
        return HTTPStatus.OK, {**job.as_dict(), "children": children}

    def post_import(self, body: bytes, query: dict[str, list[str]]) -> tuple[int, Any]:
        if len(body) > self.max_csv_bytes:
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {
                "error": f"the CSV is over API_MAX_CSV_BYTES ({self.max_csv_bytes} bytes)"
            }
        text = body.decode("utf-8", "replace")
        if not text.strip():
            return HTTPStatus.BAD_REQUEST, {"error": "send the CSV as the request body"}
        payload: dict[str, Any] = {"csv": text}
        if "delay_per_row" in query:
            try:
                payload["delay_per_row"] = float(query["delay_per_row"][0])
            except ValueError:
                return HTTPStatus.BAD_REQUEST, {"error": "delay_per_row must be seconds"}
        job_id = self.enqueue("validate-and-stage", payload)
        return HTTPStatus.ACCEPTED, {"job_id": job_id, "status_url": f"/jobs/{job_id}"}

    def post_event(self, name: str, body: bytes) -> tuple[int, Any]:
        if name not in EVENT_TASKS:
            return HTTPStatus.NOT_FOUND, {
                "error": f"unknown event {name!r}",
                "known": list(EVENT_TASKS),
            }
        try:
            data = json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            return HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON: {error}"}
        ids = [self.enqueue(task_id, data) for task_id in EVENT_TASKS[name]]
        return HTTPStatus.ACCEPTED, {"job_ids": ids}

    def cancel(self, job_id: int) -> tuple[int, Any]:
        status = self.queue.cancel(job_id)
        if status is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no job {job_id}"}
        if status not in ("cancelled", "cancelling"):
            return HTTPStatus.CONFLICT, {"error": f"job {job_id} is already {status}"}
        return HTTPStatus.ACCEPTED, {"job_id": job_id, "status": status}

    def route(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        if method == "GET" and path == "/health":
            return HTTPStatus.OK, {"ok": True}
        if method == "GET" and path == "/jobs":
            return HTTPStatus.OK, [job.as_dict() for job in self.queue.recent()]
        if method == "GET" and (match := JOB_PATH.match(path)):
            return self.job(int(match[1]))
        if method == "POST" and path == "/imports":
            return self.post_import(body, query)
        if method == "POST" and (match := CANCEL_PATH.match(path)):
            return self.cancel(int(match[1]))
        if method == "POST" and (match := EVENT_PATH.match(path)):
            return self.post_event(match[1], body)
        return HTTPStatus.NOT_FOUND, {"error": f"no route for {method} {path}"}


def handler_for(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.answer("GET")

        def do_POST(self) -> None:
            self.answer("POST")

        def answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, data = api.route(method, self.path, body)
            encoded = json.dumps(data, indent=2).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, format: str, *args: Any) -> None:
            if self.path != "/health":  # readiness probes would drown the log
                print(
                    f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True
                )

    return Handler
