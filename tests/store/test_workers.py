"""The worker registry: a node's row, its heartbeat, and which runs are its own."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository, runs, sweeps, workers
from store.models import Run, Worker, utcnow
from tests.conftest import tiny_capacity_spec


def _node(name: str = "gpu0@box") -> workers.Registration:
    return workers.Registration(
        name=name,
        hostname="box",
        pid=42,
        queues=["gpu"],
        devices=[{"index": 0, "name": "H100", "memory_gib": 80.0}],
        concurrency=2,
        version="0.1.0",
    )


def _queued_run(session: Session) -> Run:
    return repository.create_run(
        session, spec=parse_spec(tiny_capacity_spec()), name=None, tags=[], queue="gpu"
    )


def test_a_node_is_live_while_it_beats_and_shows_its_own_runs(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        workers.register(session, _node())
        workers.register(session, _node("cpu@box"))
        mine, theirs, other_node = (_queued_run(session) for _ in range(3))
        session.flush()
        runs.claim_run(session, mine.id, "gpu0@box:0a1b2c3d")
        runs.claim_run(session, other_node.id, "cpu@box:99999999")
        runs.claim_run(session, theirs.id, "gpu0@box2:0a1b2c3d")  # a name that only starts alike
    with sessions() as session:
        states = {s.worker.name: s for s in workers.worker_states(session, stale_s=60)}
        assert set(states) == {"gpu0@box", "cpu@box"}
        gpu = states["gpu0@box"]
        assert gpu.live and [run.id for run in gpu.running] == [mine.id]
        assert workers.busy_slots(gpu) == 1
        assert gpu.worker.devices[0]["name"] == "H100"
    # Silent for longer than the stale limit: still listed, not live.
    with sessions.begin() as session:
        row = session.get(Worker, "gpu0@box")
        assert row is not None
        row.heartbeat_at = utcnow() - timedelta(seconds=120)
    with sessions() as session:
        states = {s.worker.name: s for s in workers.worker_states(session, stale_s=60)}
        assert not states["gpu0@box"].live and states["cpu@box"].live
    with sessions.begin() as session:
        assert workers.beat(session, "gpu0@box") and not workers.beat(session, "nobody@box")
    with sessions() as session:
        assert all(s.live for s in workers.worker_states(session, stale_s=60))


def test_a_stopped_node_is_listed_only_when_asked_and_a_restart_revives_it(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        workers.register(session, _node())
        workers.mark_stopped(session, "gpu0@box")
    with sessions() as session:
        assert workers.worker_states(session, stale_s=60) == []
        (stopped,) = workers.worker_states(session, stale_s=60, include_stopped=True)
        assert not stopped.live and stopped.worker.stopped_at is not None
    with sessions.begin() as session:
        workers.register(session, _node())
    with sessions() as session:
        (again,) = workers.worker_states(session, stale_s=60)
        assert again.live and again.worker.stopped_at is None


def test_a_batched_group_holds_one_slot_for_all_its_members(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        workers.register(session, _node())
        members = [_queued_run(session) for _ in range(3)]
        session.flush()
        group = sweeps.create_group(session, members)
        session.flush()
        runs.claim_run(session, group.id, "gpu0@box:0a1b2c3d")
        runs.claim_group_members(session, group.id, "gpu0@box:0a1b2c3d")
    with sessions() as session:
        (state,) = workers.worker_states(session, stale_s=60)
        assert len(state.running) == 4 and workers.busy_slots(state) == 1
