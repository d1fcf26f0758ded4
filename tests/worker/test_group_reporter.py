"""A batched group's members write together: one transaction for their progress, one
query for their cancel flags, one flush of their metrics, each on a solo run's clock."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository, runs, sweeps
from store.models import Run
from worker.group_reporter import GroupWrites
from worker.reporter import RunSupersededError
from worker.runner import RunContext


def on_a_clock(context: RunContext) -> RunContext:
    """The worker's context with a solo run's intervals (the fixture's are 0: every call
    writes), so what the group gathers shows."""
    return dataclasses.replace(context, flush_interval_s=2.0, cancel_check_interval_s=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def held_group(sessions: sessionmaker[Session], size: int) -> list[uuid.UUID]:
    """The ids of `size` members of a group that worker "test" has claimed."""
    spec = parse_spec({"kind": "capacity_tradeoff"})
    with sessions.begin() as session:
        members = [
            repository.create_run(session, spec=spec, name=None, tags=[], queue="cpu")
            for _ in range(size)
        ]
        group = sweeps.create_group(session, members)
        assert runs.claim_run(session, group.id, "test")
        return runs.claim_group_members(session, group.id, "test")


@contextmanager
def statements(sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs."""
    sent: list[str] = []
    engine = sessions.kw["bind"]

    def record(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def progress_of(sessions: sessionmaker[Session], run_id: uuid.UUID) -> float:
    with sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.progress


def test_members_progress_is_written_together_on_one_clock(context: RunContext) -> None:
    ids = held_group(context.sessions, 3)
    clock = Clock()
    writes = GroupWrites(context, threading.Event(), clock)
    reporters = [writes.reporter(i, deadline=None) for i in ids]
    reporters[0].progress(0.1)  # the first write goes at once
    clock.now = 0.1
    reporters[1].progress(0.1)
    reporters[2].progress(0.1)
    assert [progress_of(context.sessions, i) for i in ids] == [0.1, 0.0, 0.0]
    clock.now = 0.7
    with statements(context.sessions) as sent:
        reporters[0].progress(0.2)
    assert [progress_of(context.sessions, i) for i in ids] == [0.2, 0.1, 0.1]
    # One UPDATE per point: the two members at 0.1 together, the one at 0.2 alone.
    assert sum("UPDATE runs" in s for s in sent) == 2


def test_one_query_reads_every_member_s_cancel_flag(context: RunContext) -> None:
    ids = held_group(context.sessions, 3)
    with context.sessions.begin() as session:
        cancelled = session.get(Run, ids[1])
        assert cancelled is not None
        runs.request_cancel(session, cancelled)
    writes = GroupWrites(on_a_clock(context), threading.Event(), Clock())
    reporters = [writes.reporter(i, deadline=None) for i in ids]
    with statements(context.sessions) as sent:
        stops = [r.should_stop() for r in reporters]
    assert stops == [False, True, False]
    assert sum("cancel_requested" in s for s in sent) == 1


def test_metrics_of_every_member_are_flushed_in_one_transaction(context: RunContext) -> None:
    ids = held_group(context.sessions, 2)
    clock = Clock()
    writes = GroupWrites(on_a_clock(context), threading.Event(), clock)
    reporters = [writes.reporter(i, deadline=None) for i in ids]
    reporters[0].log_metrics(1, {"train/loss": 1.0})
    reporters[1].log_metrics(1, {"train/loss": 2.0})
    assert _series(context, ids[0]) == [] and _series(context, ids[1]) == []  # buffered
    clock.now = 3.0  # the interval passes: one flush for both
    reporters[0].log_metrics(2, {"train/loss": 0.5})
    assert _series(context, ids[0]) == [1.0, 0.5] and _series(context, ids[1]) == [2.0]


def _series(context: RunContext, run_id: uuid.UUID) -> list[float | None]:
    with context.sessions() as session:
        found = repository.metric_series(session, run_id)
    return found["train/loss"].values if "train/loss" in found else []


def test_a_member_taken_back_stops_the_group(context: RunContext) -> None:
    ids = held_group(context.sessions, 2)
    with context.sessions.begin() as session:
        runs.settle_group_members(session, _group_of(session, ids[0]), runs.RunStatus.queued, "")
    superseded = threading.Event()
    writes = GroupWrites(context, superseded, Clock())
    reporter = writes.reporter(ids[0], deadline=None)
    with pytest.raises(RunSupersededError):
        reporter.progress(0.5)
    assert superseded.is_set()


def test_an_ended_member_is_forgotten(context: RunContext) -> None:
    ids = held_group(context.sessions, 2)
    clock = Clock()
    writes = GroupWrites(context, threading.Event(), clock)
    first, second = (writes.reporter(i, deadline=None) for i in ids)
    first.progress(0.1)
    clock.now = 0.1
    second.progress(0.5)  # kept, not yet written
    with context.sessions.begin() as session:
        runs.fail_run(session, ids[1], "diverged", worker="test")
    writes.forget(ids[1])
    clock.now = 1.0
    first.progress(0.9)  # would fail on the ended member, were it still pending
    assert progress_of(context.sessions, ids[0]) == 0.9


def _group_of(session: Session, run_id: uuid.UUID) -> uuid.UUID:
    run = session.get(Run, run_id)
    assert run is not None and run.group_id is not None
    return run.group_id
