"""`devstack mcp` driven by the MCP SDK's own client over stdio, against a real stack in a
temporary repo (issue 19): every tool is called, a restart's reason shows in `ps`, `logs`
polled with its cursor returns only new lines, and no answer carries a planted secret."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.support import DEVSTACK, clean_env, make_repo, run_cli

PY = sys.executable
SLEEP = f"{PY} -c 'import time; time.sleep(120)'"
TOKEN = "tok_planted_7f3a9c2e"
DB_PASSWORD = "hunter2planted"
SEED = "seed_planted_91b2d4"  # secret only because devstack.yaml declares it so
DEPLOY = "dpl_planted_44e1c0"  # only in the shell of an `up` the server did not start
HIDDEN = "hid_planted_0c5e7a"  # never passed; only inside OWNER, built from it
PLANTED = (TOKEN, DB_PASSWORD, SEED, DEPLOY, HIDDEN)

CONFIG = f"""
vars:
  SIGNING_SEED: {{secret: true}}
services:
  api:
    cmd: >-
      echo "connecting with $API_TOKEN to $DATABASE_URL";
      echo "seed is $SIGNING_SEED"; echo "deploying with $DEPLOY_TOKEN";
      echo "owner is $OWNER"; echo api ready; exec {SLEEP}
    env: [API_TOKEN, DATABASE_URL, SIGNING_SEED, DEPLOY_TOKEN, "OWNER=ops ${{HIDDEN_TOKEN}}"]
    ready: {{log: "api ready"}}
  flaky:
    # Crashes on its first start, then runs: the policy's restart, with its reason.
    cmd: >-
      if [ -e crashed ]; then echo flaky ok; exec {SLEEP}; fi;
      touch crashed; echo "flaky crashing with $API_TOKEN"; exit 1
    env: [API_TOKEN]
    ready: {{log: "flaky ok"}}  # so `start` answers once it crashed, or came up
    restart: on-failure
    autostart: false
"""
ENV = f"API_TOKEN={TOKEN}\nDATABASE_URL=postgres://app:{DB_PASSWORD}@localhost/app\n"
ENV += f"SIGNING_SEED={SEED}\nHIDDEN_TOKEN={HIDDEN}\n"

TOOLS = {"ps", "logs", "restart", "stop", "start", "up", "down"}
TOOLS |= {"env_story", "env_diff", "doctor", "config"}
CHANGING = {"restart", "stop", "start", "up", "down"}


class Agent:
    """An MCP client session on `devstack mcp`, keeping every answer it got."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.texts: list[str] = []

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        answer = await self._call(tool, arguments)
        assert not answer["is_error"], (tool, answer["body"])
        return answer["body"]  # type: ignore[no-any-return]

    async def fails(self, tool: str, **arguments: Any) -> dict[str, Any]:
        answer = await self._call(tool, arguments)
        assert answer["is_error"], (tool, answer["body"])
        return answer["body"]  # type: ignore[no-any-return]

    async def _call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.session.call_tool(tool, arguments)
        text = "".join(block.text for block in result.content if block.type == "text")
        self.texts += [text, json.dumps(result.structured_content)]
        assert json.loads(text) == result.structured_content  # one JSON answer, both ways
        return {"is_error": result.is_error, "body": result.structured_content}

    async def until(self, tool: str, predicate: Any, timeout: float = 30, **arguments: Any) -> Any:
        """Ask again until the answer satisfies `predicate` (no event to await over MCP)."""
        deadline = time.monotonic() + timeout
        while not predicate(answer := await self.call(tool, **arguments)):
            assert time.monotonic() < deadline, f"{tool} never satisfied the test: {answer}"
            await anyio.sleep(0.1)
        return answer


def rows(ps: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in ps["services"]}


def test_an_agent_drives_the_stack_through_devstack_mcp(repo: Path) -> None:
    make_repo(repo, CONFIG, {".env": ENV})
    texts = anyio.run(_drive, repo)
    assert len(texts) > 40
    for text in texts:
        for secret in PLANTED:
            assert secret not in text, f"{secret} in an answer: {text[:300]}"


async def _drive(repo: Path) -> list[str]:
    server = StdioServerParameters(command=DEVSTACK, args=["mcp"], cwd=repo, env=clean_env())
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        agent = Agent(session)
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(listed) == TOOLS
        for name, tool in listed.items():
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is (name not in CHANGING), name
            assert (tool.description or "").startswith("Changes") is (name in CHANGING), name
        try:
            await _use_every_tool(agent)
        finally:
            await session.call_tool("down", {})
        assert (await agent.call("ps"))["running"] is False
        return agent.texts


async def _use_every_tool(agent: Agent) -> None:
    assert (await agent.call("ps"))["running"] is False
    started = await agent.call("up")
    assert started["started"] is True and started["running"] is True, started
    assert rows(started)["api"]["state"] == "ready"
    assert (await agent.call("up"))["already_running"] is True

    first = await agent.call("logs", service="api")
    assert first["lines"][-1] == "api ready" and first["more"] is False
    assert "connecting with •••• to postgres://app:••••@localhost/app" in first["lines"]
    assert "seed is ••••" in first["lines"]
    assert "owner is ops ••••" in first["lines"]  # HIDDEN_TOKEN is secret, OWNER built from it
    assert (await agent.call("logs", service="api", grep="^seed"))["lines"] == ["seed is ••••"]
    assert (await agent.call("logs", service="api", grep="planted"))["lines"] == []

    restarted = await agent.call("restart", service="api")
    assert restarted["ok"] is True and restarted["restarts"] == 1
    api = rows(await agent.call("ps"))["api"]
    assert api["last_restart_reason"] == "asked by `devstack mcp`"
    assert api["last_exit_text"] == "killed by SIGTERM" and api["pid"] == restarted["pid"]

    new = await agent.call("logs", service="api", since=first["cursor"])
    assert new["lines"][0].startswith("----- started ") and new["lines"][1:] == first["lines"][1:]
    assert new["cursor"] != first["cursor"] and new["gap"] is False
    again = await agent.call("logs", service="api", since=new["cursor"])
    assert again["lines"] == [] and again["cursor"] == new["cursor"]
    paged = await agent.call("logs", service="api", since=first["cursor"], lines=2)
    assert paged["lines"] == new["lines"][:2] and paged["more"] is True
    rest = await agent.call("logs", service="api", since=paged["cursor"])
    assert paged["lines"] + rest["lines"] == new["lines"]

    crashed = await agent.call("start", service="flaky")
    assert crashed["ok"] is False and crashed["state"] == "backing-off", crashed
    assert "flaky crashing with ••••" in crashed["last_lines"]
    flaky = await agent.until("ps", lambda ps: rows(ps)["flaky"]["state"] == "ready")
    assert rows(flaky)["flaky"]["last_restart_reason"] == "exited 1 (restart: on-failure)"

    assert (await agent.call("stop", service="flaky"))["state"] == "stopped"
    assert (await agent.call("start", service="flaky"))["state"] == "ready"
    await _ask_about_the_env(agent)
    await _mistakes_are_structured_errors(agent)

    stopped = await agent.call("down")
    assert stopped["stopped"] is True
    after = await agent.call("logs", service="flaky", lines=1)  # from the file, stack gone
    assert after["lines"] == ["flaky ok"]

    # A stack started from a shell with a secret this server's environment lacks.
    repo = Path(started["root"])
    up = await anyio.to_thread.run_sync(
        lambda: run_cli("up", "-d", "api", cwd=repo, env=clean_env(DEPLOY_TOKEN=DEPLOY))
    )
    assert up.returncode == 0, up.stdout + up.stderr
    lines = (await agent.call("logs", service="api", grep="^deploying"))["lines"]
    assert lines[-2:] == ["deploying with ", "deploying with ••••"]


async def _ask_about_the_env(agent: Agent) -> None:
    story = await agent.call("env_story", service="api", name="API_TOKEN")
    assert story["secret"] is True and story["source"] == ".env:1" and story["passed"] is True
    assert story["value"].startswith("•••• (20 chars, #")
    owner = await agent.call("env_story", service="api", name="OWNER")
    assert owner["secret"] is True and owner["value"].startswith("ops •••• (22 chars, #")
    seed = await agent.call("env_story", service="flaky", name="SIGNING_SEED")
    assert seed["passed"] is False and seed["dropped"]["reason"]
    assert any("to pass it" in line for line in seed["story"])

    diff = await agent.call("env_diff", service="api", other="flaky")
    assert diff["same"] is False
    assert "SIGNING_SEED" in diff["only_in"]["api"] and diff["only_in"]["flaky"] == []

    doctor = await agent.call("doctor")
    assert doctor["ok"] is True and doctor["errors"] == 0
    fields = {"severity", "message", "file", "line", "hint"}
    assert all(fields <= set(problem) for problem in doctor["problems"])

    config = await agent.call("config", service="api")
    assert list(config["services"]) == ["api"]
    env = config["services"]["api"]["env"]
    assert env["DATABASE_URL"] == "postgres://app:••••@localhost/app"
    assert env["API_TOKEN"].startswith("••••") and env["SIGNING_SEED"].startswith("••••")


async def _mistakes_are_structured_errors(agent: Agent) -> None:
    typo = await agent.fails("restart", service="apj")
    assert typo["problems"][0]["hint"] == "did you mean 'api'?"
    bad = await agent.fails("logs", service="api", grep="(")
    assert "not a regular expression" in bad["error"]
    assert "not a cursor" in (await agent.fails("logs", service="api", since="x"))["error"]
