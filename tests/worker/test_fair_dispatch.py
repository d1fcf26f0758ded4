"""A fair dispatcher pass over a real database: slots from the registry, runs handed out
in fair order, reasons for the rest, one dispatcher at a time on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository, runs, workers
from store.identity import create_user, personal_project
from store.models import Run
from store.settings import Settings
from tests.conftest import tiny_capacity_spec
from worker.dispatch import RecordingDispatcher
from worker.fair_dispatch import ADVISORY_LOCK_KEY, DeferredDispatcher, dispatch_pass


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, dispatch="fair", **overrides)  # type: ignore[arg-type]


def _submit(session: Session, owner: uuid.UUID, project: uuid.UUID, count: int) -> list[uuid.UUID]:
    made = [
        repository.create_run(
            session,
            spec=parse_spec(tiny_capacity_spec()),
            name=None,
            tags=[],
            queue="cpu",
            project_id=project,
            submitted_by=owner,
        )
        for _ in range(count)
    ]
    session.flush()
    return [run.id for run in made]


def _users(session: Session) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
    found = {}
    for name in ("ada", "bob"):
        user, _ = create_user(session, name)
        found[name] = (user.id, personal_project(session, user.id))
    return found


def _node(concurrency: int) -> workers.Registration:
    return workers.Registration("n@box", "box", 1, ["cpu"], [], concurrency, "test")


def test_a_pass_fills_the_free_slots_fairly_and_says_why_the_rest_waits(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings, broker = _settings(tmp_path), RecordingDispatcher()
    with sessions.begin() as session:
        users = _users(session)
        adas = _submit(session, *users["ada"], 5)
        bobs = _submit(session, *users["bob"], 1)
    assert dispatch_pass(sessions, broker, settings).publish == []  # type: ignore[union-attr]
    with sessions() as session:
        waiting = session.get(Run, adas[0])
        assert waiting is not None
        assert waiting.progress_message == "waiting: no live worker takes the cpu queue"
    with sessions.begin() as session:
        workers.register(session, _node(concurrency=2))
    dispatch_pass(sessions, broker, settings)
    assert broker.published == [adas[0], bobs[0]]  # one each, the oldest of each first
    dispatch_pass(sessions, broker, settings)
    assert len(broker.published) == 2  # both slots are spoken for until claimed
    with sessions.begin() as session:
        runs.claim_run(session, adas[0], "n@box:0a1b2c3d")
        runs.finish_run(session, adas[0], {"ok": True})
    dispatch_pass(sessions, broker, settings)
    assert broker.published[2:] == [adas[1]]
    with sessions() as session:
        handed_out, left = session.get(Run, adas[1]), session.get(Run, adas[2])
        assert handed_out is not None and handed_out.enqueued_at is not None
        assert handed_out.progress_message is None
        assert left is not None and left.progress_message == "waiting for a free worker slot"


def test_a_draining_node_offers_no_slot_and_quotas_hold_runs_back(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    broker = RecordingDispatcher()
    with sessions.begin() as session:
        users = _users(session)
        adas = _submit(session, *users["ada"], 3)
        workers.register(session, _node(concurrency=3))
        workers.request_drain(session, "n@box")
    dispatch_pass(sessions, broker, _settings(tmp_path))
    assert broker.published == []
    with sessions.begin() as session:
        workers.register(session, _node(concurrency=3))  # restarted: no longer draining
    dispatch_pass(sessions, broker, _settings(tmp_path, quota_runs_per_user=1))
    assert broker.published == [adas[0]]
    with sessions() as session:
        held = session.get(Run, adas[1])
        assert held is not None and "MEMLAB_QUOTA_RUNS_PER_USER" in (held.progress_message or "")


def test_submissions_through_the_deferred_dispatcher_publish_nothing() -> None:
    broker = RecordingDispatcher()
    deferred = DeferredDispatcher(broker)
    assert deferred.enqueue(uuid.uuid4(), "cpu") is False and broker.published == []
    assert deferred.ping() and deferred.queue_length("cpu") == 0


def test_on_postgresql_one_dispatcher_at_a_time(
    sessions: sessionmaker[Session], tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one server process, which is the dispatcher")
    broker = RecordingDispatcher()
    with sessions.begin() as session:
        users = _users(session)
        _submit(session, *users["ada"], 2)
        workers.register(session, _node(concurrency=2))
    with sessions() as holder, holder.begin():  # another process's pass, in progress
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        assert dispatch_pass(sessions, broker, _settings(tmp_path)) is None
        assert broker.published == []
    # Its transaction ended (done, or its process died): the next pass leads.
    assert dispatch_pass(sessions, broker, _settings(tmp_path)) is not None
    assert len(broker.published) == 2


class RefusingBroker(RecordingDispatcher):
    """Takes the first `takes` messages, then is down."""

    def __init__(self, takes: int) -> None:
        super().__init__()
        self.takes = takes

    def enqueue(self, experiment_id: uuid.UUID, queue: str) -> bool:
        if len(self.published) >= self.takes:
            return False
        return super().enqueue(experiment_id, queue)


def test_runs_are_marked_before_they_are_published_and_unmarked_if_the_broker_refuses(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    broker = RefusingBroker(takes=1)
    with sessions.begin() as session:
        users = _users(session)
        adas = _submit(session, *users["ada"], 3)
        workers.register(session, _node(concurrency=3))
    dispatch_pass(sessions, broker, _settings(tmp_path))
    assert broker.published == [adas[0]]
    with sessions() as session:
        marked = [run_id for run_id in adas if session.get(Run, run_id).enqueued_at]  # type: ignore[union-attr]
    assert marked == [adas[0]]  # the refused ones are candidates again
    broker.takes = 3
    dispatch_pass(sessions, broker, _settings(tmp_path))
    assert broker.published == adas


def test_handed_out_runs_take_the_slots_only_their_queue_can_use(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Node a takes cpu and gpu, node b gpu only, one slot each; one cpu run and one gpu
    run are out unclaimed: no slot is left, whichever way they are counted."""
    broker = RecordingDispatcher()
    with sessions.begin() as session:
        users = _users(session)
        for name, queues in (("a@box", ["cpu", "gpu"]), ("b@box", ["gpu"])):
            workers.register(session, workers.Registration(name, "box", 1, queues, [], 1, "t"))
        out = _submit(session, *users["ada"], 2)
        older = session.get(Run, out[0])  # out first: the gpu run, which node a could take
        assert older is not None
        older.queue, older.created_at = "gpu", older.created_at - timedelta(minutes=1)
        for run_id in out:
            runs.mark_enqueued(session, run_id)
        waiting = _submit(session, *users["bob"], 1)
        session.get(Run, waiting[0]).queue = "gpu"  # type: ignore[union-attr]
    dispatch_pass(sessions, broker, _settings(tmp_path))
    assert broker.published == []
    with sessions() as session:
        held = session.get(Run, waiting[0])
        assert held is not None and held.progress_message == "waiting for a free worker slot"
