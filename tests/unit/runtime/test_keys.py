"""What a line typed in the `up` terminal asks of the stack (through `StackAPI`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from devstack.runtime.keys import REASON, _act
from tests.fakes import FakeStack


def three_services() -> FakeStack:
    project = SimpleNamespace(services=dict.fromkeys(("api", "jobs", "mail")))
    return FakeStack(project, SimpleNamespace(services={}))


def test_r_alone_restarts_all_but_what_was_stopped_on_request() -> None:
    stack = three_services()
    stack.states["mail"] = "stopped"
    asyncio.run(_act(stack, "r"))
    assert stack.calls == [("restart", ("api", "jobs"))]
    assert stack.restarts.get_nowait() == (["api", "jobs"], REASON)


def test_r_with_a_name_restarts_it_even_when_stopped() -> None:
    stack = three_services()
    stack.states["mail"] = "stopped"
    asyncio.run(_act(stack, "r mail"))
    assert stack.calls == [("restart", ("mail",))]


def test_a_typo_is_said_with_a_hint_and_restarts_nothing() -> None:
    stack = three_services()
    asyncio.run(_act(stack, "r jbos"))
    assert stack.calls == []
    assert stack.messages == ["unknown service 'jbos' (did you mean 'jobs'?)"]
