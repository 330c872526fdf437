"""The service state machine and restart policy, as tables of (state, event, now) -> outcome."""

from __future__ import annotations

import pytest

from devstack.core.policy import (
    BackoffElapsed,
    CancelRestart,
    DependencyFailed,
    Exited,
    IllegalTransition,
    ProbeGaveUp,
    ProbePassed,
    Record,
    Restart,
    RestartRule,
    Say,
    ScheduleRestart,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    StartProbe,
    State,
    Stop,
    StopProcess,
    backoff_delay,
    condition_failed,
    condition_met,
    decide,
    describe_exit,
)

S = State
NO = RestartRule()
ON_FAILURE = RestartRule(mode="on-failure")
ALWAYS = RestartRule(mode="always")
PROBED = RestartRule(has_probe=True)
WATCHED = RestartRule(watch=True)

UP = Record(state=S.RUNNING, alive=True, ready=True, spawns=1, up_since=100.0)
PROBING = Record(state=S.STARTING, alive=True, spawns=1, up_since=100.0)
WAITING = Record(state=S.STARTING)  # waiting for its dependencies, no process yet

# (record, event, now, rule) -> (new state, actions)
TRANSITIONS = [
    (Record(), Start(), 0.0, NO, S.STARTING, (Spawn(),)),
    (WAITING, Spawned(), 100.0, NO, S.RUNNING, ()),
    (WAITING, Spawned(), 100.0, PROBED, S.STARTING, (StartProbe(),)),
    (PROBING, ProbePassed(), 101.0, PROBED, S.READY, ()),
    (PROBING, ProbeGaveUp(), 160.0, PROBED, S.RUNNING, ()),
    (UP, Exited(0), 101.0, NO, S.EXITED, (Say("exited 0"),)),
    (UP, Exited(1), 101.0, NO, S.CRASHED, (Say("exited 1", "error"),)),
    (UP, Exited(-9), 101.0, NO, S.CRASHED, (Say("killed by SIGKILL", "error"),)),
    (
        UP,
        Exited(1),
        101.0,
        WATCHED,
        S.WAITING_FOR_CHANGE,
        (Say("exited 1, waiting for a change to restart", "error"),),
    ),
    (UP, Exited(0), 101.0, ON_FAILURE, S.EXITED, (Say("exited 0"),)),
    # Watched: a crash soon after the start waits for the fix, not the same crash again
    # (issue 11 §5); a crash after a stable run restarts as the rule says.
    (
        UP,
        Exited(1),
        101.0,
        RestartRule(mode="on-failure", watch=True),
        S.WAITING_FOR_CHANGE,
        (Say("exited 1, waiting for a change to restart", "error"),),
    ),
    (
        UP,
        Exited(1),
        200.0,
        RestartRule(mode="on-failure", watch=True),
        S.BACKING_OFF,
        (Say("exited 1, restarting in 1s", "error"), ScheduleRestart(1.0)),
    ),
    (
        WAITING,
        SpawnFailed(),
        101.0,
        RestartRule(mode="always", watch=True),
        S.WAITING_FOR_CHANGE,
        (Say("could not start, waiting for a change to restart", "error"),),
    ),
    (
        UP,
        Exited(3),
        101.0,
        ON_FAILURE,
        S.BACKING_OFF,
        (Say("exited 3, restarting in 1s", "error"), ScheduleRestart(1.0)),
    ),
    (
        UP,
        Exited(0),
        101.0,
        ALWAYS,
        S.BACKING_OFF,
        (Say("exited 0, restarting in 1s"), ScheduleRestart(1.0)),
    ),
    (
        Record(S.BACKING_OFF, failures=1),
        BackoffElapsed(),
        102.0,
        ALWAYS,
        S.STARTING,
        (Spawn(),),
    ),
    (
        WAITING,
        SpawnFailed(),
        0.0,
        NO,
        S.CRASHED,
        (Say("could not start", "error"),),
    ),
    (
        WAITING,
        DependencyFailed("db exited 1"),
        0.0,
        ON_FAILURE,
        S.CRASHED,
        (Say("not started: db exited 1", "error"),),
    ),
    (UP, Stop(), 101.0, NO, S.STOPPING, (StopProcess(),)),
    (WAITING, Stop(), 1.0, NO, S.STOPPED, ()),
    (Record(S.BACKING_OFF, failures=1), Stop(), 1.0, ALWAYS, S.STOPPED, (CancelRestart(),)),
    (Record(S.STOPPING, alive=True), Exited(-15), 1.0, ALWAYS, S.STOPPED, (Say("stopped"),)),
    (UP, Restart(), 101.0, NO, S.RESTARTING, (StopProcess(),)),
    (Record(S.RESTARTING, alive=True), Restart(), 1.0, NO, S.RESTARTING, ()),
    (Record(S.RESTARTING, alive=True), Exited(-15), 1.0, NO, S.STARTING, (Spawn(),)),
    (Record(S.RESTARTING, alive=True), Stop(), 1.0, NO, S.STOPPING, ()),
    (WAITING, Restart(), 1.0, NO, S.STARTING, ()),
    (Record(S.CRASHED, last_exit=1), Restart(), 1.0, NO, S.STARTING, (Spawn(),)),
    (Record(S.WAITING_FOR_CHANGE), Restart(), 1.0, WATCHED, S.STARTING, (Spawn(),)),
    (Record(S.EXITED), Start(), 1.0, NO, S.STARTING, (Spawn(),)),
    (Record(S.BACKING_OFF), Start(), 1.0, ON_FAILURE, S.STARTING, (CancelRestart(), Spawn())),
    (Record(S.BACKING_OFF), Restart(), 1.0, ON_FAILURE, S.STARTING, (CancelRestart(), Spawn())),
]


@pytest.mark.parametrize(
    ("record", "event", "now", "rule", "state", "actions"),
    TRANSITIONS,
    ids=[f"{r.state}-{type(e).__name__}-{rule.mode}" for r, e, _, rule, *_ in TRANSITIONS],
)
def test_transition(
    record: Record,
    event: object,
    now: float,
    rule: RestartRule,
    state: State,
    actions: tuple[object, ...],
) -> None:
    decision = decide(record, event, now, rule)  # type: ignore[arg-type]
    assert (decision.record.state, decision.actions) == (state, actions)


ILLEGAL = [
    (Record(S.STOPPED), Exited(0)),
    (UP, Spawned()),  # a second instance while one is alive
    (WAITING, Exited(1)),  # no process to exit
    (WAITING, ProbePassed()),
]

# A request that is already met, or a timer that fired after its cancel: a legal
# transition that changes nothing (these were errors the caller had to check for).
NO_OPS = [
    (Record(S.CRASHED), Stop()),
    (UP, Start()),
    (Record(S.STOPPING, alive=True), Restart()),
    (Record(S.EXITED), BackoffElapsed()),
]


@pytest.mark.parametrize(("record", "event"), NO_OPS)
def test_requests_already_met_change_nothing(record: Record, event: object) -> None:
    decision = decide(record, event, 0.0, NO)  # type: ignore[arg-type]
    assert (decision.record.state, decision.record.alive, decision.actions) == (
        record.state,
        record.alive,
        (),
    )


@pytest.mark.parametrize(("record", "event"), ILLEGAL)
def test_illegal_transitions_name_the_states_that_allow_them(record: Record, event: object) -> None:
    with pytest.raises(IllegalTransition, match=r"not allowed in state|only allowed"):
        decide(record, event, 0.0, NO)  # type: ignore[arg-type]


def test_illegal_message_lists_allowed_states() -> None:
    with pytest.raises(IllegalTransition) as caught:
        decide(Record(S.STOPPED), Exited(1), 0.0, NO)
    assert "only in: ready, restarting, running, starting, stopping" in str(caught.value)


def run_history(rule: RestartRule, exits: list[tuple[float, float, int]]) -> list[str]:
    """Spawn at t0, exit at t1 with code, for each entry; the messages said on the way."""
    record = decide(Record(), Start(), 0.0, rule).record
    said: list[str] = []
    for spawn_at, exit_at, code in exits:
        if record.state is S.BACKING_OFF:
            record = decide(record, BackoffElapsed(), spawn_at, rule).record
        record = decide(record, Spawned(), spawn_at, rule).record
        decision = decide(record, Exited(code), exit_at, rule)
        record = decision.record
        said += [action.message for action in decision.actions if isinstance(action, Say)]
    said.append(f"-> {record.state}")
    return said


def test_backoff_doubles_and_caps_at_30s() -> None:
    assert [backoff_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(1000) == 30


def test_on_failure_backs_off_then_resets_after_a_stable_run() -> None:
    quick = [(0.0, 0.1, 1), (1.1, 1.2, 1), (3.2, 3.3, 1)]
    stable_then_quick = [(7.3, 30.0, 1), (31.0, 31.1, 1)]
    assert run_history(ON_FAILURE, quick + stable_then_quick) == [
        "exited 1, restarting in 1s",
        "exited 1, restarting in 2s",
        "exited 1, restarting in 4s",
        "exited 1, restarting in 1s",  # it stayed up 10 s or more: forgiven
        "exited 1, restarting in 2s",
        "-> backing-off",
    ]


def test_max_restarts_gives_up() -> None:
    rule = RestartRule(mode="on-failure", max_restarts=2)
    assert run_history(rule, [(0, 0.1, 1), (1, 1.1, 1), (3, 3.1, 2)]) == [
        "exited 1, restarting in 1s",
        "exited 1, restarting in 2s",
        "exited 2, giving up after 2 restarts",
        "-> crashed",
    ]


def test_with_watch_a_quick_failure_waits_for_a_change_before_max_restarts() -> None:
    rule = RestartRule(mode="always", max_restarts=3, watch=True)
    assert run_history(rule, [(0, 0.1, 0), (1, 1.1, 1)]) == [
        "exited 0, restarting in 1s",
        "exited 1, waiting for a change to restart",
        "-> waiting-for-change",
    ]


def test_always_restarts_clean_exits_and_never_gives_up_without_max() -> None:
    history = run_history(ALWAYS, [(t, t + 0.1, 0) for t in range(8)])
    assert history[-2:] == ["exited 0, restarting in 30s", "-> backing-off"]


def test_a_manual_restart_resets_the_failure_count() -> None:
    record = Record(S.BACKING_OFF, failures=4, last_exit=1)
    assert decide(record, Restart(), 0.0, ON_FAILURE).record.failures == 0


def test_restarts_count_every_new_instance() -> None:
    record = decide(Record(), Start(), 0.0, NO).record
    record = decide(record, Spawned(), 0.0, NO).record
    assert record.restarts == 0
    record = decide(record, Restart(), 1.0, NO).record
    record = decide(record, Exited(-15), 1.5, NO).record
    record = decide(record, Spawned(), 1.6, NO).record
    assert (record.state, record.restarts, record.last_exit) == (S.RUNNING, 1, -15)


CONDITIONS = [
    # record, started, ready, completed
    (WAITING, False, False, False),
    (PROBING, True, False, False),
    (Record(S.READY, alive=True, ready=True), True, True, False),
    (UP, True, True, False),
    (Record(S.RUNNING, alive=True, ready=False), True, False, False),  # its probe gave up
    (Record(S.EXITED, last_exit=0), True, True, True),
    (Record(S.CRASHED, last_exit=1), False, False, False),
]


@pytest.mark.parametrize(("record", "started", "ready", "completed"), CONDITIONS)
def test_dependency_conditions(record: Record, started: bool, ready: bool, completed: bool) -> None:
    met = [condition_met(record, c) for c in ("started", "ready", "completed")]
    assert met == [started, ready, completed]


def test_failed_dependencies() -> None:
    assert condition_failed(Record(S.CRASHED))
    assert condition_failed(Record(S.STOPPED))
    assert not condition_failed(Record(S.WAITING_FOR_CHANGE))  # a fix may start it again
    assert not condition_failed(Record(S.BACKING_OFF))


def test_describe_exit() -> None:
    assert describe_exit(0) == "exited 0"
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(-200) == "killed by signal 200"
