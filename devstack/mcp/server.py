"""`devstack mcp`'s server: the tools of `mcp_tools` on the official MCP SDK, over stdio.

Each tool is a typed function whose docstring is its description; the SDK derives the
input schema from the parameters (named as on the command line: service, name, lines,
grep, since) and the output schema from the return annotation. Every answer is one
JSON object, in the structured content and as text; a failure is the same object with
`error` and `problems`, flagged as an error. Tools that change the stack say so, and
carry the SDK's annotations (readOnlyHint, destructiveHint, idempotentHint) so a client
can ask its user first. The work runs in a worker thread, bounded in time; the SDK
keeps fd 0 and 1 for the protocol while serving, so nothing a tool starts can write
into it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from devstack import __version__
from devstack.core.errors import DevstackError
from devstack.mcp.stack import Stack
from devstack.mcp.tools import (
    DEFAULT_LINES,
    MAX_LINES,
    Redactor,
    ToolFailure,
    Tools,
    finish,
)

QUICK = 30.0  # seconds for a read-only answer (doctor's port checks are the slowest)
SETTLE = 180.0  # for restart, start, stop: the supervisor answers once the service settled
LONG = 900.0  # for up and down, whose own waits are bounded inside

INSTRUCTIONS = """\
devstack runs this repo's dev stack (devstack.yaml). Use `ps` to see each service's
state and why it last restarted, `logs` (with `since` = the previous answer's cursor to
get only new lines) to read a service's output, `restart`/`stop`/`start` to act on one
service, `up`/`down` to start the stack in the background or stop it. `env_story`
explains where a variable's value comes from, `env_diff` compares two services, `doctor`
lists every problem of the config and env files, `config` shows the resolved plan.
Secret values are always masked."""

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# Stops processes: a client should ask its user first.
INTERRUPTS = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
# Starts what is not running; asking it again changes nothing.
STARTS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

# A tool's work: given the redactor of this call, its answer.
Call = Callable[[Redactor], dict[str, Any]]
Service = Annotated[str, Field(description="a service name from devstack.yaml")]
Answer = Annotated[CallToolResult, dict[str, Any]]


def build_server(tools: Tools) -> MCPServer:
    """The MCP server with every devstack tool registered."""
    server: MCPServer = MCPServer(name="devstack", instructions=INSTRUCTIONS, version=__version__)

    async def answer(call: Call, timeout: float) -> CallToolResult:
        body, failed = await _run_bounded(tools, call, timeout)
        text = json.dumps(body, ensure_ascii=False)
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=body, is_error=failed
        )

    @server.tool(annotations=READ_ONLY)
    async def ps() -> Answer:
        """The services of the running stack: state, pid, uptime_seconds, restarts, the
        last restart's reason (a file or variable that changed, a request, a crash), the
        last exit, port. `running` is false when no stack runs (then `up` starts one)."""
        return await answer(lambda _: tools.ps(), QUICK)

    @server.tool(annotations=READ_ONLY)
    async def logs(
        service: Service,
        lines: Annotated[int, Field(ge=1, le=MAX_LINES, description="at most this many lines")] = (
            DEFAULT_LINES
        ),
        grep: Annotated[
            str | None, Field(description="only lines matching this regular expression")
        ] = None,
        since: Annotated[
            str,
            Field(
                description="the `cursor` of a previous logs answer: only the lines after it,"
                " oldest first (poll with it to follow a service)"
            ),
        ] = "",
    ) -> Answer:
        """A service's output from its log file (also after the stack stopped): its last
        `lines` lines, or with `since` the lines written after that cursor. The answer's
        `cursor` is where the next poll goes on; `more` says lines are left to fetch;
        `gap` says the file rotated past the cursor. Secrets in lines are masked."""
        return await answer(lambda secrets: tools.logs(service, lines, grep, since, secrets), QUICK)

    @server.tool(annotations=INTERRUPTS)
    async def restart(service: Service) -> Answer:
        """Changes the running stack: stops the service and starts it again, then answers
        once it is up (or failed, with its last log lines). Its `ps` row then shows
        the restart's reason."""
        return await answer(lambda _: tools.act("restart", service), SETTLE)

    @server.tool(annotations=INTERRUPTS)
    async def stop(service: Service) -> Answer:
        """Changes the running stack: stops the service (and keeps it stopped until
        `start`); the rest of the stack keeps running."""
        return await answer(lambda _: tools.act("stop", service), SETTLE)

    @server.tool(annotations=STARTS)
    async def start(service: Service) -> Answer:
        """Changes the running stack: starts the service (a stopped one, or one with
        `autostart: false`) and what it depends on; answers once it is up or failed."""
        return await answer(lambda _: tools.act("start", service), SETTLE)

    @server.tool(annotations=STARTS)
    async def up(
        service: Annotated[
            str | None, Field(description="only this service and what it depends on")
        ] = None,
    ) -> Answer:
        """Changes the machine: starts the stack in the background (`devstack up -d`) if
        none runs, waits until every service is up or failed, and answers with `ps`. The
        stack keeps running after this session ends, until `down`."""
        return await answer(lambda _: tools.up(service), LONG)

    @server.tool(annotations=INTERRUPTS)
    async def down() -> Answer:
        """Changes the machine: stops the whole running stack, every service in reverse
        dependency order, and waits until it is gone."""
        return await answer(lambda _: tools.down(), LONG)

    @server.tool(annotations=READ_ONLY)
    async def env_story(
        service: Service,
        name: Annotated[str, Field(description="an environment variable's name")],
    ) -> Answer:
        """Where one variable of one service comes from: its value (masked if secret),
        the layer that sets it and the ones it shadows, or why it is not passed and the
        line that would pass it. From devstack.yaml and the env files as they are now."""
        return await answer(lambda _: tools.env_story(service, name), QUICK)

    @server.tool(annotations=READ_ONLY)
    async def env_diff(
        service: Service,
        other: Annotated[str, Field(description="the service to compare it with")],
    ) -> Answer:
        """The variables two services get differently (secrets as masked fingerprints, so
        equal secrets show equal), and the names only one of them gets."""
        return await answer(lambda _: tools.env_diff(service, other), QUICK)

    @server.tool(annotations=READ_ONLY)
    async def doctor() -> Answer:
        """Every problem of the config, env files, declared variables, commands, working
        directories and ports: severity, message, file, line and a hint to fix it."""
        return await answer(lambda _: tools.doctor(), QUICK)

    @server.tool(annotations=READ_ONLY)
    async def config(
        service: Annotated[str | None, Field(description="only this service")] = None,
    ) -> Answer:
        """The resolved plan per service: argv, cwd, environment (masked), dependencies,
        ports, readiness probe, watch and restart settings."""
        return await answer(lambda _: tools.config(service), QUICK)

    return server


async def _run_bounded(tools: Tools, call: Call, timeout: float) -> tuple[dict[str, Any], bool]:
    """The call's answer made safe to send, and whether it failed; off the event loop."""

    def work() -> tuple[dict[str, Any], bool]:
        secrets = tools.redactor()  # once per call: `logs` needs it before its grep too
        try:
            body, failed = call(secrets), False
        except ToolFailure as failure:
            body, failed = failure.answer(), True
        except DevstackError as error:
            body, failed = ToolFailure.from_error(error).answer(), True
        return finish(body, secrets), failed

    with anyio.move_on_after(timeout):
        # Abandoned at the deadline: the thread finishes on its own (the control
        # client's own timeouts end it), the client gets an answer now.
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    message = f"no answer within {timeout:.0f}s; the request may still complete in the stack"
    return {"error": message, "problems": [{"message": message}]}, True


def serve(config_path: Path) -> int:
    """Serve the repo of `config_path` over stdin and stdout until the client leaves."""
    import os

    tools = Tools(config_path, Stack(config_path), os.environ)
    build_server(tools).run("stdio")
    return 0
