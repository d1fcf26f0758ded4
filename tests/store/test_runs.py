"""The run state machine on SQLite and PostgreSQL: legal moves happen once, illegal ones refuse."""

import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository, runs
from store.models import Run, RunStatus


def new_run(sessions: sessionmaker[Session]) -> uuid.UUID:
    with sessions.begin() as session:
        spec = parse_spec({"kind": "capacity_tradeoff"})
        return repository.create_run(session, spec=spec, name=None, tags=[], queue="cpu").id


def status_of(sessions: sessionmaker[Session], experiment_id: uuid.UUID) -> Run:
    with sessions() as session:
        experiment = session.get(Run, experiment_id)
        assert experiment is not None
        return experiment


@pytest.mark.parametrize(
    ("handed_to", "claimed_by", "wins"),
    [
        ("a@box", "a@box:0001", True),  # a process of the node it was handed to
        ("a@box", "b@box:0001", False),  # a stale message on another node
        ("a@box:0001", "a@box:0001", True),  # the process a worker handed a probe to
        ("a@box:0001", "a@box:0002", False),  # another process of that node
        (None, "b@box:0001", True),  # never routed (or released): any worker
    ],
)
def test_a_run_handed_to_a_node_is_claimed_there_only(
    sessions: sessionmaker[Session], handed_to: str | None, claimed_by: str, wins: bool
) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        runs.mark_enqueued(session, run_id, handed_to)
    with sessions.begin() as session:
        assert runs.claim_run(session, run_id, claimed_by) is wins
    assert status_of(sessions, run_id).status is (RunStatus.running if wins else RunStatus.queued)


def test_only_the_first_of_two_claims_wins(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        assert runs.claim_run(session, run_id, "worker-a")
    with sessions.begin() as session:
        assert not runs.claim_run(session, run_id, "worker-b")
    experiment = status_of(sessions, run_id)
    assert (experiment.status, experiment.worker, experiment.attempts) == (
        RunStatus.running,
        "worker-a",
        1,
    )
    assert experiment.started_at is not None and experiment.started_at.tzinfo is not None


def test_a_run_finishes_once(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        assert not runs.finish_run(session, run_id, {"x": 1})  # not running yet
        runs.claim_run(session, run_id, "w")
        assert runs.finish_run(session, run_id, {"x": 1})
        assert not runs.fail_run(session, run_id, "late failure")
    experiment = status_of(sessions, run_id)
    assert (experiment.status, experiment.result, experiment.progress) == (
        RunStatus.succeeded,
        {"x": 1},
        1.0,
    )


def test_cancelling_a_queued_run_ends_it_at_once(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        experiment = session.get(Run, run_id)
        assert experiment is not None
        assert runs.request_cancel(session, experiment) is RunStatus.cancelled
    with sessions.begin() as session:
        assert not runs.claim_run(session, run_id, "w")  # a late delivery does nothing
    assert status_of(sessions, run_id).status is RunStatus.cancelled


def test_cancelling_a_running_run_only_asks_it_to_stop(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        runs.claim_run(session, run_id, "w")
        experiment = session.get(Run, run_id)
        assert experiment is not None
        assert runs.request_cancel(session, experiment) is RunStatus.running
    experiment = status_of(sessions, run_id)
    assert experiment.status is RunStatus.running and experiment.cancel_requested
    with sessions.begin() as session:
        assert runs.mark_cancelled(session, run_id, "cancelled at step 3")
    assert status_of(sessions, run_id).status is RunStatus.cancelled


def test_cancelling_a_finished_run_is_illegal(sessions: sessionmaker[Session]) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        runs.claim_run(session, run_id, "w")
        runs.fail_run(session, run_id, "boom")
    with sessions() as session:
        experiment = session.get(Run, run_id)
        assert experiment is not None
        with pytest.raises(runs.IllegalTransitionError, match="it is failed"):
            runs.request_cancel(session, experiment)


def test_progress_is_recorded_only_while_running_and_clamped(
    sessions: sessionmaker[Session],
) -> None:
    run_id = new_run(sessions)
    with sessions.begin() as session:
        assert not runs.record_progress(session, run_id, 0.5, "too early")
        runs.claim_run(session, run_id, "w")
        assert runs.record_progress(session, run_id, 1.7, "step 10/10")
    experiment = status_of(sessions, run_id)
    assert (experiment.progress, experiment.progress_message) == (1.0, "step 10/10")
