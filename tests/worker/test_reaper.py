"""The reaper recovers runs whose worker died and ends runs past their wall-time limit;
it publishes nothing: the dispatcher hands out what it puts back in the queue.

The broker side here is a recording dispatcher: these tests pin down the reaper's
decisions; tests/e2e kill real workers and restart a real Redis.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository, runs, sweeps
from store.models import Run, RunStatus, utcnow
from store.settings import Settings
from tests.conftest import register_node
from worker.dispatch import RecordingDispatcher
from worker.fair_dispatch import dispatch_pass
from worker.reaper import reap


def settings_for(tmp_path: Path, **fields: object) -> Settings:
    defaults: dict[str, object] = {
        "heartbeat_stale_s": 60,
        "max_attempts": 3,
        "redeliver_after_s": 600,
    }
    return Settings(data_dir=tmp_path, **{**defaults, **fields})  # type: ignore[arg-type]


def dispatched(sessions: sessionmaker[Session], settings: Settings) -> list[uuid.UUID]:
    """The runs a dispatcher pass hands out with a live node free to take 100 runs."""
    register_node(sessions, "n@box")
    broker = RecordingDispatcher()
    dispatch_pass(sessions, broker, settings)
    return broker.published


def running_run(
    sessions: sessionmaker[Session], silent_for_s: float, attempts: int = 1, cancel: bool = False
) -> uuid.UUID:
    with sessions.begin() as session:
        spec = parse_spec({"kind": "capacity_tradeoff"})
        run_id = repository.create_run(session, spec=spec, name=None, tags=[], queue="cpu").id
        runs.claim_run(session, run_id, "lost-worker")
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                heartbeat_at=utcnow() - timedelta(seconds=silent_for_s),
                attempts=attempts,
                cancel_requested=cancel,
                enqueued_at=utcnow() - timedelta(seconds=silent_for_s),
            )
        )
    return run_id


def load(sessions: sessionmaker[Session], run_id: uuid.UUID) -> Run:
    with sessions() as session:
        experiment = session.get(Run, run_id)
        assert experiment is not None
        return experiment


def test_a_silent_run_is_requeued_unpublished_and_the_dispatcher_hands_it_out(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    lost = running_run(sessions, silent_for_s=120)
    alive = running_run(sessions, silent_for_s=5)
    report = reap(sessions, settings_for(tmp_path))
    assert report.requeued == [lost]
    requeued = load(sessions, lost)
    assert (requeued.status, requeued.worker, requeued.attempts) == (RunStatus.queued, None, 1)
    assert requeued.enqueued_at is None
    assert load(sessions, alive).status is RunStatus.running
    assert dispatched(sessions, settings_for(tmp_path)) == [lost]


def test_a_run_that_lost_its_worker_too_often_fails_with_the_reason(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    exhausted = running_run(sessions, silent_for_s=120, attempts=3)
    report = reap(sessions, settings_for(tmp_path, max_attempts=3))
    assert report.ended == [exhausted]
    failed = load(sessions, exhausted)
    assert failed.status is RunStatus.failed
    assert "worker lost 3 times" in (failed.error or "")
    assert failed.finished_at is not None


def test_a_lost_run_that_was_being_cancelled_ends_cancelled(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run_id = running_run(sessions, silent_for_s=120, cancel=True)
    reap(sessions, settings_for(tmp_path))
    assert load(sessions, run_id).status is RunStatus.cancelled


def test_a_heartbeat_only_counts_for_the_worker_running_the_run(
    sessions: sessionmaker[Session],
) -> None:
    run_id = running_run(sessions, silent_for_s=120)
    with sessions.begin() as session:
        assert not runs.heartbeat(session, run_id, "some-other-worker")
        assert runs.heartbeat(session, run_id, "lost-worker")
    assert load(sessions, run_id).heartbeat_at > utcnow() - timedelta(seconds=5)


def test_a_heartbeat_landing_first_keeps_the_run_with_its_worker(
    sessions: sessionmaker[Session],
) -> None:
    run_id = running_run(sessions, silent_for_s=120)
    stale_before = utcnow() - timedelta(seconds=60)
    with sessions.begin() as session:
        experiment = session.get(Run, run_id)
        assert experiment is not None
        assert runs.heartbeat(session, run_id, "lost-worker")  # the beat wins the race
        assert runs.recover_lost_run(session, experiment, stale_before, max_attempts=3) is None
    assert load(sessions, run_id).status is RunStatus.running


def test_a_run_far_past_its_wall_limit_is_failed_even_if_it_still_beats(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run_id = running_run(sessions, silent_for_s=0)
    with sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(started_at=utcnow() - timedelta(seconds=500), spec={"max_wall_s": 100})
        )
    report = reap(sessions, settings_for(tmp_path))
    assert report.ended == [run_id]
    failed = load(sessions, run_id)
    assert failed.status is RunStatus.failed and "time limit exceeded" in (failed.error or "")


def test_no_lost_run_recovery_while_the_database_has_only_just_come_back(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run_id = running_run(sessions, silent_for_s=120)
    report = reap(sessions, settings_for(tmp_path), recover_lost=False)
    assert report.requeued == []
    assert load(sessions, run_id).status is RunStatus.running


def lost_group(
    sessions: sessionmaker[Session], attempts: int = 1, queued_members: int = 0
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A group whose worker went silent 120 s ago while training its two members (and
    with `queued_members` more it had not claimed)."""
    spec = parse_spec({"kind": "capacity_tradeoff"})
    with sessions.begin() as session:
        members = [
            repository.create_run(session, spec=spec, name=None, tags=[], queue="cpu")
            for _ in range(2 + queued_members)
        ]
        group = sweeps.create_group(session, members)
        runs.claim_run(session, group.id, "lost-worker")
        claimed = members[:2]
        for member in claimed:
            runs.claim_run(session, member.id, "lost-worker")
        silent = utcnow() - timedelta(seconds=120)
        session.execute(
            update(Run)
            .where(Run.id.in_([group.id, *(m.id for m in claimed)]))
            .values(heartbeat_at=silent, attempts=attempts, enqueued_at=silent)
        )
        return group.id, [m.id for m in members]


def test_a_lost_group_is_requeued_with_its_members_and_only_the_group_is_published(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    group_id, member_ids = lost_group(sessions, queued_members=1)
    report = reap(sessions, settings_for(tmp_path))
    assert report.requeued == [group_id]
    with sessions() as session:
        for member_id in member_ids:
            member = session.get(Run, member_id)
            assert member is not None
            assert member.status is RunStatus.queued and member.worker is None
    # Handed out only as the group: its members never reach the broker alone.
    assert dispatched(sessions, settings_for(tmp_path)) == [group_id]


def test_a_group_out_of_attempts_fails_with_every_unfinished_member(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    group_id, member_ids = lost_group(sessions, attempts=3, queued_members=1)
    report = reap(sessions, settings_for(tmp_path))
    assert report.ended == [group_id]
    with sessions() as session:
        for member_id in member_ids:
            member = session.get(Run, member_id)
            assert member is not None and member.status is RunStatus.failed
            assert member.error is not None and "batched group was lost" in member.error


def test_a_live_group_s_members_are_left_alone(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    group_id, member_ids = lost_group(sessions)
    with sessions.begin() as session:
        assert runs.heartbeat_group(session, group_id, "lost-worker")
    report = reap(sessions, settings_for(tmp_path))
    assert report.requeued == [] and report.ended == []
    with sessions() as session:
        assert all(session.get(Run, i).status is RunStatus.running for i in member_ids)  # type: ignore[union-attr]


def test_a_member_left_unfinished_by_an_ended_group_is_recovered_as_a_solo_run(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    group_id, member_ids = lost_group(sessions, queued_members=1)
    with sessions.begin() as session:  # the group ended, but two members never did
        session.execute(update(Run).where(Run.id == group_id).values(status=RunStatus.succeeded))
    report = reap(sessions, settings_for(tmp_path))
    assert set(report.requeued) == set(member_ids[:2])  # the silent ones, back in the queue
    handed_out = dispatched(sessions, settings_for(tmp_path))
    assert set(handed_out) == set(member_ids)  # all handed out alone


def test_a_requeued_run_drops_its_workers_last_message_for_the_dispatchers_reason(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    lost = running_run(sessions, silent_for_s=120)
    with sessions.begin() as session:
        session.execute(update(Run).where(Run.id == lost).values(progress_message="step 500/1000"))
    reap(sessions, settings_for(tmp_path))
    assert load(sessions, lost).progress_message is None
    dispatch_pass(sessions, RecordingDispatcher(), settings_for(tmp_path))  # no live node
    assert load(sessions, lost).progress_message == "waiting: no live worker takes the cpu queue"
