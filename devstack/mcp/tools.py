"""What `devstack mcp`'s tools answer: JSON-ready dicts from the repo and its running stack.

Plain functions on a `Stack` (the control-socket adapter) and the repo's devstack.yaml,
with no MCP in them; `mcp_server` exposes them over the SDK. Every answer passes
through `finish`: each string is cleared of the repo's secret values (the values of
secret variables, URL passwords), then lists and strings are cut, with a marker, until
the answer fits MAX_ANSWER. Values of variables are masked as `devstack env` masks
them, and there is no reveal. A mistake (an unknown service, no running stack) is a
`ToolFailure` carrying the same problems the CLI would print.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from devstack.core import logfiles
from devstack.core.errors import DevstackError, Problem, unknown_name_error
from devstack.core.secrets import MASK, KnownSecrets, Masking, is_secret
from devstack.mcp.stack import Stack

if TYPE_CHECKING:
    from devstack.core.envmodel import ProjectEnv
    from devstack.core.model import Project

DEFAULT_LINES = 100
MAX_LINES = 500
LOG_READ_LIMIT = 1024 * 1024  # bytes of a log file one `logs` call reads
MAX_LINE_CHARS = 2000
MAX_LOG_CHARS = 64_000  # characters of lines in one `logs` answer
MAX_ANSWER = 100_000  # characters of one answer as JSON
# (items per list, characters per string), tried in turn until an answer fits MAX_ANSWER.
BOUNDS = ((MAX_LINES, 4000), (100, 1000), (20, 200))
# A secret value shorter than this is not searched for in free text (logs, messages):
# "1" or "dev" would blank out every line. Variables themselves are always masked.
MIN_SECRET_LENGTH = 6
FAILED_LINES = 20  # log lines an answer shows for a service that did not come up
NOT_RUNNING_HINT = "the `up` tool starts the stack in the background"
T = TypeVar("T")
# A password inside a URL, as secrets.hide_url_passwords finds it, but tried only where a
# scheme can begin (not inside a run of scheme characters): the same search from every
# position took seconds on one 64 KiB log line of letters.
URL_PASSWORD = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")


class ToolFailure(Exception):
    """A request that cannot be answered: the problems, as the CLI would print them."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(problem.render() for problem in self.problems))

    @classmethod
    def from_error(cls, error: DevstackError) -> ToolFailure:
        return cls(error.problems)

    def answer(self) -> dict[str, Any]:
        return {
            "error": "\n".join(problem.message for problem in self.problems),
            "problems": [problem.as_dict() for problem in self.problems],
        }


# -- making every answer safe to send ---------------------------------------------------


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values, and URL passwords, in free text."""

    known: KnownSecrets | None

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        return cls(KnownSecrets(values, MIN_SECRET_LENGTH))

    def text(self, text: str) -> str:
        if self.known is not None:
            text = self.known.text(text)
        if "://" not in text:
            return text
        return URL_PASSWORD.sub(lambda match: f"{match[1]}{MASK}@", text)

    def answer(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.answer(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(key)): self.answer(item) for key, item in value.items()}
        return value


def secret_values(environments: Iterable[tuple[Mapping[str, str], Masking]]) -> set[str]:
    """What no answer may show of `environments` (each with how its values are masked):
    the values of secret variables, the secrets a value was built from by interpolation
    (`OWNER=ops ${API_TOKEN}` gives API_TOKEN's value, passed or not), URL passwords."""
    from urllib.parse import urlsplit

    found: set[str] = set()
    for environment, masking in environments:
        for name, value in environment.items():
            found.update(masking.secret_texts(name, value))
            if "://" in value:
                try:
                    password = urlsplit(value).password
                except ValueError:
                    continue
                if password:
                    found.add(password)
    return found


def finish(answer: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The answer cleared of secrets and cut to fit MAX_ANSWER."""
    safe = redactor.answer(dict(answer))
    for items, chars in BOUNDS:
        cut = _bounded(safe, items, chars)
        if len(json.dumps(cut)) <= MAX_ANSWER:
            return cut
    return {"error": "the answer was too large to send", "truncated": True}


def _bounded(value: Any, items: int, chars: int) -> Any:
    if isinstance(value, str) and len(value) > chars:
        return value[:chars] + f"… [truncated: {len(value) - chars} more characters]"
    if isinstance(value, list):
        kept = [_bounded(item, items, chars) for item in value[:items]]
        if len(value) > items:
            kept.append(f"… [truncated: {len(value) - items} more items]")
        return kept
    if isinstance(value, dict):
        return {key: _bounded(item, items, chars) for key, item in value.items()}
    return value


# -- the tools ---------------------------------------------------------------------------


class Tools:
    """The answers for one repo: `config_path` is its devstack.yaml."""

    def __init__(self, config_path: Path, stack: Stack, environ: Mapping[str, str]) -> None:
        self.config_path = config_path
        self.root = config_path.parent
        self.stack = stack
        self.environ = environ

    # -- the repo, read afresh for each call (devstack.yaml and env files change) ---------

    def project(self) -> Project:
        from devstack.core.config import load_project

        try:
            return load_project(self.config_path)
        except DevstackError as error:
            raise ToolFailure.from_error(error) from None

    def resolved(self) -> tuple[Project, ProjectEnv]:
        from devstack.core.envresolve import resolve_project

        project = self.project()
        return project, resolve_project(project, dict(self.environ), {})

    def redactor(self) -> Redactor:
        """The secrets to keep out of answers: those of the environments devstack.yaml and
        the env files give now, and those the running services were given (the shell
        that ran `up` may have had secrets this server's environment lacks)."""
        running = list(self.stack.service_envs().items())
        environments: list[tuple[Mapping[str, str], Masking]] = []
        try:
            project, env = self.resolved()
        except ToolFailure:
            # A broken config: what the running stack has, by name and value, URL passwords.
            environments = [(values, Masking()) for _, values in running]
        else:
            maskings = {name: e.masking(project.vars) for name, e in env.services.items()}
            environments = [
                (values, maskings.get(name, Masking(project.vars))) for name, values in running
            ]
            environments += [(e.values, maskings[name]) for name, e in env.services.items()]
        return Redactor.of(secret_values(environments))

    def require_service(self, name: str, project: Project | None = None) -> Project:
        project = project or self.project()
        if name not in project.services:
            raise ToolFailure([unknown_name_error("service", name, project.services)])
        return project

    # -- the running stack ----------------------------------------------------------------

    def ps(self) -> dict[str, Any]:
        try:
            reply = self.stack.status()
        except DevstackError as error:
            if error.problems[0].code != "not-running":
                raise ToolFailure.from_error(error) from None
            return {
                "running": False,
                "root": str(self.root),
                "services": [],
                "hint": NOT_RUNNING_HINT,
            }
        now = time.time()
        return {
            "running": True,
            "root": reply["root"],
            "supervisor_pid": reply["pid"],
            "services": [service_row(row, now) for row in reply["services"]],
        }

    def act(self, op: str, service: str) -> dict[str, Any]:
        """`restart`, `stop` or `start` one service, once it has settled."""
        from devstack.commands.restart import WANTED_STATES, describe_outcome

        self.require_service(service)
        rows = {row["name"]: row for row in self._ask(lambda: self.stack.act(op, [service]))}
        row = rows.get(service)
        if row is None:
            raise ToolFailure(
                [Problem(f"{service} is not part of this run", hint="the `start` tool starts it")]
            )
        outcome, went_well = describe_outcome(row, WANTED_STATES[op])
        answer = {"ok": went_well, "outcome": outcome, **service_row(row, time.time())}
        if not went_well:
            answer["last_lines"] = self._last_lines(service, FAILED_LINES)
        return answer

    def up(self, service: str | None) -> dict[str, Any]:
        from devstack.runtime.detach import START_MARGIN, ready_timeout

        project = self.require_service(service) if service else self.project()
        status = self.ps()
        if status["running"]:
            return {"already_running": True, **status}
        timeout = ready_timeout(project, list(project.services)) + START_MARGIN + 10
        started = self.stack.start_detached([service] if service else [], timeout)
        return {
            "started": started.exit_status == 0,
            "exit_status": started.exit_status,
            "output": started.output.splitlines(),
            **self.ps(),
        }

    def down(self) -> dict[str, Any]:
        try:
            pid, exited = self.stack.shut_down()
        except DevstackError as error:
            if error.problems[0].code != "not-running":
                raise ToolFailure.from_error(error) from None
            return {"stopped": False, "running": False, "message": f"no stack runs in {self.root}"}
        message = "stopped" if exited else "still stopping; `ps` shows what is left"
        return {"stopped": exited, "running": not exited, "supervisor_pid": pid, "message": message}

    def _ask(self, call: Callable[[], T]) -> T:
        """The stack's answer; its refusal as a ToolFailure, "not running" with the way out."""
        try:
            return call()
        except DevstackError as error:
            problems = list(error.problems)
            if problems[0].code == "not-running":
                problems = [Problem(problems[0].message, hint=NOT_RUNNING_HINT, code="not-running")]
            raise ToolFailure(problems) from None

    # -- logs, from the log files (also once the stack has stopped) -------------------------

    def logs(
        self,
        service: str,
        lines: int = DEFAULT_LINES,
        grep: str | None = None,
        since: str = "",
        redactor: Redactor | None = None,
    ) -> dict[str, Any]:
        project = self.require_service(service)
        if not 1 <= lines <= MAX_LINES:
            raise ToolFailure([Problem(f"lines must be between 1 and {MAX_LINES}, not {lines}")])
        try:
            pattern = re.compile(grep) if grep else None
        except re.error as error:
            problem = Problem(f"grep {grep!r} is not a regular expression: {error}")
            raise ToolFailure([problem]) from None
        path = logfiles.log_file(logfiles.log_dir(project.root), service)
        chunk = read_log(path, since)
        redactor = redactor or self.redactor()
        shown: list[str] = []
        cursor, size, more = chunk.end_cursor, 0, chunk.more
        for text, after in chunk.lines:
            # Redacted before matching: a grep must not probe a secret's characters.
            line = _cut_line(redactor.text(text))
            if pattern is not None and not pattern.search(line):
                continue
            if since and (len(shown) >= lines or size + len(line) > MAX_LOG_CHARS):
                more = True  # the rest on the next call: the cursor stops after the last shown
                break
            shown.append(line)
            size += len(line)
            cursor = after
        else:
            cursor = chunk.end_cursor
        if not since:  # the last N lines; the next poll goes on from the end
            shown, more = _last(shown, lines), False
        return {
            "service": service,
            "file": project.display_path(path),
            "lines": shown,
            "cursor": cursor,
            "more": more,
            "gap": chunk.gap,
        }

    def _last_lines(self, service: str, count: int) -> list[str]:
        path = logfiles.log_file(logfiles.log_dir(self.root), service)
        return [line for line, _ in read_log(path, "").lines][-count:]

    # -- the environment and the config (no running stack needed) --------------------------

    def env_story(self, service: str, name: str) -> dict[str, Any]:
        from devstack.core.envreport import Shown, shown_variables, variable_story

        project, env = self._resolved_service(service)
        shown = Shown(project)
        service_env = env.services[service]
        variable = shown_variables(project, service_env).get(name)  # devstack's own too
        dropped = service_env.dropped.get(name)
        derived = variable.source.derived if variable else ()
        answer: dict[str, Any] = {
            "service": service,
            "name": name,
            "passed": name in service_env.values,
            "secret": is_secret(name, project.vars, variable.value if variable else None, derived),
            "value": shown.source(name, variable.source) if variable else None,
            "source": variable.source.label if variable else None,
            "shadowed": [
                {"source": source.label, "value": shown.source(name, source)}
                for source in (variable.shadowed if variable else ())
            ],
            "dropped": None,
            "story": variable_story(project, env, service, name, shown).splitlines(),
        }
        if dropped is not None:
            answer["dropped"] = {
                "reason": dropped.reason,
                "sources": [
                    {"source": source.label, "value": shown.source(name, source)}
                    for source in dropped.sources
                ],
            }
        return answer

    def env_diff(self, service: str, other: str) -> dict[str, Any]:
        from devstack.core.envreport import Shown, diff_services

        project, env = self._resolved_service(service)
        self.require_service(other, project)
        diff = diff_services(env, service, other, Shown(project))
        return {
            "service": service,
            "other": other,
            "same": not (diff.differing or diff.only_left or diff.only_right),
            "different": [
                {"name": name, "values": {service: left, other: right}}
                for name, left, right in diff.differing
            ],
            "only_in": {service: diff.only_left, other: diff.only_right},
        }

    def doctor(self) -> dict[str, Any]:
        from devstack.commands.doctor import _holder_outside_stack
        from devstack.core.doctor import diagnose

        try:
            project, env = self.resolved()
        except ToolFailure as failure:
            problems = failure.problems
        else:
            problems = diagnose(project, env, port_holder=_holder_outside_stack(project))
        errors = sum(problem.severity == "error" for problem in problems)
        return {
            "ok": errors == 0,
            "errors": errors,
            "warnings": len(problems) - errors,
            "problems": [problem.as_dict() for problem in problems],
        }

    def config(self, service: str | None) -> dict[str, Any]:
        from devstack.core.plan import service_plan

        project, env = self._resolved_service(service) if service else self._checked()
        names = [service] if service else list(project.services)
        return {
            "root": str(project.root),
            "env_mode": project.env_mode,
            "services": {name: service_plan(project, env, name) for name in names},
        }

    def _resolved_service(self, service: str) -> tuple[Project, ProjectEnv]:
        project, env = self._checked()
        self.require_service(service, project)
        return project, env

    def _checked(self) -> tuple[Project, ProjectEnv]:
        """The project and env; env files that do not parse make the answer an error."""
        project, env = self.resolved()
        errors = [problem for problem in env.problems if problem.severity == "error"]
        if errors:
            raise ToolFailure(errors)
        return project, env


def service_row(row: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A `ps` row as an agent reads it: uptime in seconds, the last exit in words."""
    from devstack.core.policy import describe_exit

    started = row.get("started_at")
    last_exit = row.get("last_exit")
    return {
        "name": row["name"],
        "state": row["state"],
        "pid": row.get("pid"),
        "uptime_seconds": round(now - started, 1) if started else None,
        "restarts": row.get("restarts", 0),
        "last_restart_reason": row.get("reason") or None,
        "last_exit": last_exit,
        "last_exit_text": describe_exit(last_exit) if last_exit is not None else None,
        "port": row.get("port"),
        "detail": row.get("detail") or None,
    }


def _cut_line(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return line[:MAX_LINE_CHARS] + f"… [truncated: {len(line) - MAX_LINE_CHARS} more characters]"


def _last(lines: list[str], count: int) -> list[str]:
    """The last `count` lines whose total fits MAX_LOG_CHARS."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-count:]):
        if size + len(line) > MAX_LOG_CHARS:
            break
        kept.append(line)
        size += len(line)
    return kept[::-1]


# -- reading a log file from a cursor ---------------------------------------------------


@dataclass(frozen=True)
class LogChunk:
    """Whole lines of a log file, each with the cursor just after it."""

    lines: list[tuple[str, str]]
    end_cursor: str  # after the last whole line read: where the next poll goes on
    more: bool  # the file goes on past what was read (LOG_READ_LIMIT)
    gap: bool  # the file rotated past the cursor: lines between were not returned


def read_log(path: Path, since: str) -> LogChunk:
    """The lines after cursor `since` ("": the last LOG_READ_LIMIT bytes of the file).

    A cursor is "<inode>:<offset>" of the log file (inode 0: there was none yet). The
    file is appended to and, past 5 MB, renamed to `.log.1`: a cursor into that older
    file reads its rest first. Only whole lines are returned; a line still being
    written waits for the next call.
    """
    current = _identity(path)
    gap = False
    if not since:
        offset = max(0, current[1] - LOG_READ_LIMIT) if current else 0
        parts = [(path, offset)]
    else:
        inode, offset = parse_cursor(since)
        older = path.with_name(logfiles.rotated_name(path.name))
        if current is not None and current[0] == inode and offset <= current[1]:
            parts = [(path, offset)]
        elif (previous := _identity(older)) is not None and previous[0] == inode:
            parts = [(older, min(offset, previous[1])), (path, 0)]
        else:
            parts, gap = [(path, 0)], inode != 0
    lines: list[tuple[str, str]] = []
    end_cursor, more = since or "0:0", False
    for part, offset in parts:
        read, end_cursor, more = _read_lines(part, offset, skip_partial=not since and offset > 0)
        lines += read
        if more:
            break
    return LogChunk(lines, end_cursor, more, gap)


def parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        inode, offset = (int(part) for part in cursor.split(":"))
    except ValueError:
        hint = "pass the `cursor` of the previous `logs` answer"
        raise ToolFailure([Problem(f"since {cursor!r} is not a cursor", hint=hint)]) from None
    return inode, max(offset, 0)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_size


def _read_lines(
    path: Path, offset: int, *, skip_partial: bool
) -> tuple[list[tuple[str, str]], str, bool]:
    """Whole lines from `offset`, at most LOG_READ_LIMIT bytes: (line, cursor after it)
    each, the cursor where reading stopped, and whether the file goes on."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return [], "0:0", False  # no log yet: the next poll reads it from its start
    with os.fdopen(descriptor, "rb") as file:
        inode = os.fstat(descriptor).st_ino
        file.seek(offset)
        data = file.read(LOG_READ_LIMIT + 1)
    cut = len(data) > LOG_READ_LIMIT
    data = data[:LOG_READ_LIMIT]
    position = offset
    if skip_partial and (newline := data.find(b"\n")) >= 0:
        position += newline + 1  # the tail began mid-line: start at the next whole one
        data = data[newline + 1 :]
    lines = []
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # being written: the next call takes it whole
        position += len(raw)
        lines.append((raw.decode("utf-8", "replace").rstrip("\r\n"), f"{inode}:{position}"))
    return lines, f"{inode}:{position}", cut
