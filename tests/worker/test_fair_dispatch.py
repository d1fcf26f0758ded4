"""A fair dispatcher pass over a real database: slots from the registry, runs handed out
in fair order, reasons for the rest, one dispatcher at a time on PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository, runs, sweeps, workers
from store.identity import create_user, personal_project
from store.models import Run, RunStatus, utcnow
from store.settings import Settings
from tests.conftest import tiny_capacity_spec
from worker.celery_config import node_queue
from worker.dispatch import RecordingDispatcher
from worker.fair_dispatch import ADVISORY_LOCK_KEY, DispatcherThread, dispatch_pass


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)  # type: ignore[arg-type]


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


def test_a_run_whose_message_was_lost_is_handed_out_again_once_its_queue_is_empty(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:
        users = _users(session)
        long_out, recently_out = _submit(session, *users["ada"], 2)
        for run_id in (long_out, recently_out):
            runs.mark_enqueued(session, run_id)
        session.get(Run, long_out).enqueued_at -= timedelta(seconds=1000)  # type: ignore[union-attr]
        workers.register(session, _node(concurrency=4))
    settings = _settings(tmp_path, redeliver_after_s=600)
    # While messages wait in its queue, the run's is most likely among them.
    busy = RecordingDispatcher(waiting=5)
    dispatch_pass(sessions, busy, settings)
    assert busy.published == []
    empty = RecordingDispatcher(waiting=0)
    dispatch_pass(sessions, empty, settings)
    assert empty.published == [long_out]  # the recently handed-out one is left alone


def test_a_wake_runs_a_pass_at_once_rather_than_at_the_next_interval(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    broker = RecordingDispatcher()
    with sessions.begin() as session:
        users = _users(session)
        submitted = _submit(session, *users["ada"], 1)
        workers.register(session, _node(concurrency=1))
    thread = DispatcherThread(sessions, broker, _settings(tmp_path, dispatch_interval_s=3600))
    thread.start()
    try:
        thread.wake()
        deadline = time.monotonic() + 30
        while not broker.published and time.monotonic() < deadline:
            time.sleep(0.05)
        assert broker.published == submitted
    finally:
        thread.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


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


def test_a_gpu_run_goes_to_the_own_queue_of_a_node_with_a_free_gpu_that_meets_it(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Two nodes on the gpu queue; only one has a GPU (80 GiB), and two pool processes.
    Two runs ask for 40 GiB: the first goes to that node's own queue, and the second waits
    for the GPU (not for a slot) while the first holds it, handed out or running."""
    broker, settings = RecordingDispatcher(), _settings(tmp_path)
    big = workers.Registration(
        "big@box", "box", 1, ["gpu"], [{"name": "H100", "memory_gib": 80}], 2, "t"
    )
    with sessions.begin() as session:
        users = _users(session)
        workers.register(session, workers.Registration("plain@box", "box", 1, ["gpu"], [], 1, "t"))
        workers.register(session, big)
        asks, later = _submit(session, *users["ada"], 2)
        for run_id in (asks, later):
            run = session.get(Run, run_id)
            assert run is not None
            run.queue, run.gpus, run.gpu_memory_gib = "gpu", 1, 40.0
    dispatch_pass(sessions, broker, settings)
    assert broker.sent == [(asks, node_queue("big@box"))]
    wait_for_gpu = "waiting for a free worker slot with 1 GPU with at least 40 GiB"
    assert _shown(sessions, asks) == (True, None, "big@box")
    assert _shown(sessions, later) == (False, wait_for_gpu, None)
    # The node stops before claiming it: the run is handed out again at once, and with no
    # live node that has the GPU, both runs say so.
    with sessions.begin() as session:
        workers.mark_stopped(session, "big@box")
    dispatch_pass(sessions, broker, settings)
    nobody = "waiting: no worker offers 1 GPU with at least 40 GiB on the gpu queue"
    assert _shown(sessions, asks) == (False, nobody, None)
    # It comes back: the run goes to it again, and while it runs there it holds the GPU.
    with sessions.begin() as session:
        workers.register(session, big)
    dispatch_pass(sessions, broker, settings)
    assert broker.sent[-1] == (asks, node_queue("big@box"))
    with sessions.begin() as session:
        assert runs.claim_run(session, asks, "big@box:0000abcd")
    dispatch_pass(sessions, broker, settings)
    assert broker.published == [asks, asks]
    assert _shown(sessions, later) == (False, wait_for_gpu, None)


def _shown(
    sessions: sessionmaker[Session], run_id: uuid.UUID
) -> tuple[bool, str | None, str | None]:
    """Whether the run is handed out, why it waits, and the node it went to."""
    with sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.enqueued_at is not None, run.progress_message, run.dispatched_to


def test_gpu_hours_over_the_last_day_hold_the_next_gpu_run_back(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """6 GPU-hours of a finished run, 1 of a batched group (its members not again), 1 of
    a run lost and requeued 4 hours ago (not the time it has waited since), and none of
    a run that ended two days ago: 8 in all."""
    broker = RecordingDispatcher()
    now = utcnow()
    hours_ago = [now - timedelta(hours=h) for h in range(50)]
    with sessions.begin() as session:
        users = _users(session)
        done, requeued, old, waiting, cpu_run, *members = _submit(session, *users["ada"], 7)
        group = sweeps.create_group(session, [session.get(Run, m) for m in members])  # type: ignore[misc]
        stamps = {  # run: (gpus, status, started, last heartbeat, finished)
            done: (2, RunStatus.succeeded, hours_ago[4], None, hours_ago[1]),
            group.id: (1, RunStatus.succeeded, hours_ago[3], hours_ago[2], hours_ago[2]),
            requeued: (1, RunStatus.queued, hours_ago[5], hours_ago[4], None),
            old: (4, RunStatus.succeeded, hours_ago[49], hours_ago[48], hours_ago[48]),
        }
        for member in members:  # the group's members, stamped like their group
            stamps[member] = stamps[group.id]
        for run_id, (gpus, status, started, beat, finished) in stamps.items():
            run = session.get(Run, run_id)
            assert run is not None
            run.gpus, run.status, run.started_at = gpus, status, started
            run.heartbeat_at, run.finished_at = beat, finished
        session.get(Run, waiting).gpus = 1  # type: ignore[union-attr]
        devices = [{"name": "A100", "memory_gib": 40}] * 2
        workers.register(session, workers.Registration("g@box", "box", 1, ["cpu"], devices, 8, "t"))
    dispatch_pass(sessions, broker, _settings(tmp_path, quota_gpu_hours_per_user=8), now)
    assert broker.published == [cpu_run]  # the requeued run asks for a GPU too
    with sessions() as session:
        held = session.get(Run, waiting)
        assert held is not None and "used 8.0 GPU-hours" in (held.progress_message or "")
    dispatch_pass(sessions, broker, _settings(tmp_path, quota_gpu_hours_per_user=8.5), now)
    assert set(broker.published) == {cpu_run, requeued, waiting}


def test_the_pass_a_submission_asks_for_stops_at_once_when_no_slot_is_free(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    broker, settings = RecordingDispatcher(), _settings(tmp_path)
    with sessions.begin() as session:
        users = _users(session)
        (submitted,) = _submit(session, *users["ada"], 1)
    dispatch_pass(sessions, broker, settings, only_if_free=True)
    assert _shown(sessions, submitted) == (False, None, None)  # not even read
    dispatch_pass(sessions, broker, settings)  # the next full pass says why it waits
    assert _shown(sessions, submitted) == (
        False,
        "waiting: no live worker takes the cpu queue",
        None,
    )
    with sessions.begin() as session:
        workers.register(session, _node(concurrency=1))
    dispatch_pass(sessions, broker, settings, only_if_free=True)
    assert broker.published == [submitted]


def test_a_run_claimed_during_a_pass_never_frees_a_slot_twice(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass reads the handed-out runs and the running ones in two statements. A worker
    that claims its run between them must not make the pass count neither (the node's
    one slot would be handed out a second time)."""
    from worker import fair_dispatch

    settings, broker = _settings(tmp_path), RecordingDispatcher()
    with sessions.begin() as session:
        users = _users(session)
        first, second = _submit(session, *users["ada"], 2)
        workers.register(session, _node(concurrency=1))
    dispatch_pass(sessions, broker, settings)
    assert broker.published == [first]  # the node's one slot, not yet claimed

    reads: list[str] = []

    def claim_before(name: str, read):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            reads.append(name)
            if len(reads) == 2:  # between the pass's two reads, whichever comes first
                with sessions.begin() as session:
                    assert runs.claim_run(session, first, "n@box:0a1b2c3d")
            return read(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(
        fair_dispatch, "_handed_out", claim_before("handed", fair_dispatch._handed_out)
    )
    monkeypatch.setattr(
        fair_dispatch, "_live_nodes", claim_before("live", fair_dispatch._live_nodes)
    )
    dispatch_pass(sessions, broker, settings)
    assert sorted(reads) == ["handed", "live"]
    assert broker.published == [first]  # the slot is the claimed run's: nothing more
    monkeypatch.undo()
    with sessions.begin() as session:
        runs.finish_run(session, first, {"ok": True})
    dispatch_pass(sessions, broker, settings)
    assert broker.published == [first, second]  # freed by the run's end, then taken
