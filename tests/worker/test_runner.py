"""execute_run against a real database: the path every worker takes for every run."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository, runs
from store.models import Run, RunStatus
from store.runs import json_safe
from tests.conftest import tiny_capacity_spec
from worker.reporter import DatabaseReporter
from worker.runner import RunContext, execute_run


def queue_run(sessions: sessionmaker[Session], spec: dict[str, Any]) -> uuid.UUID:
    with sessions.begin() as session:
        return repository.create_run(
            session, spec=parse_spec(spec), name=None, tags=[], queue="cpu"
        ).id


def load(sessions: sessionmaker[Session], experiment_id: uuid.UUID) -> Run:
    with sessions() as session:
        experiment = session.get(Run, experiment_id)
        assert experiment is not None
        return experiment


def test_a_run_succeeds_with_its_result_metrics_and_checkpoints(context: RunContext) -> None:
    run_id = queue_run(context.sessions, tiny_capacity_spec(task="joint"))
    assert execute_run(context, run_id) is RunStatus.succeeded
    experiment = load(context.sessions, run_id)
    assert experiment.status is RunStatus.succeeded and experiment.progress == 1.0
    assert experiment.result is not None and "facts" in experiment.result["final"]
    with context.sessions() as session:
        series = repository.metric_series(session, run_id)
        artifacts = repository.list_artifacts(session, run_id)
    assert series["eval/facts"].steps == [20, 40, 60]
    assert series["train/loss"].steps[-1] == 60
    assert {a.step for a in artifacts} == {30, 60}
    for artifact in artifacts:
        assert context.artifacts.resolve(artifact.path).stat().st_size == artifact.size_bytes


def test_a_second_delivery_of_the_same_run_does_nothing(context: RunContext) -> None:
    run_id = queue_run(context.sessions, tiny_capacity_spec())
    assert execute_run(context, run_id) is RunStatus.succeeded
    assert execute_run(context, run_id) is None
    assert load(context.sessions, run_id).attempts == 1


def test_a_cancel_request_stops_the_run_at_a_checkpoint(context: RunContext) -> None:
    run_id = queue_run(context.sessions, tiny_capacity_spec())
    # Simulate the API's cancel arriving while the worker is between steps.
    original = context.artifacts.checkpoint_dir

    def cancel_on_first_use(experiment_id: uuid.UUID) -> Path:
        with context.sessions.begin() as session:
            experiment = session.get(Run, experiment_id)
            assert experiment is not None
            if experiment.status is RunStatus.running and not experiment.cancel_requested:
                runs.request_cancel(session, experiment)
        return original(experiment_id)

    context.artifacts.checkpoint_dir = cancel_on_first_use  # type: ignore[method-assign]
    assert execute_run(context, run_id) is RunStatus.cancelled
    experiment = load(context.sessions, run_id)
    assert experiment.status is RunStatus.cancelled
    assert experiment.progress_message == "cancelled at step 0"
    with context.sessions() as session:
        assert {a.step for a in repository.list_artifacts(session, run_id)} == {0}


def test_an_error_in_the_engine_fails_the_run_with_its_traceback(context: RunContext) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so a cuda spec would not fail")
    run_id = queue_run(context.sessions, tiny_capacity_spec(train={"device": "cuda"}))
    assert execute_run(context, run_id) is RunStatus.failed
    error = load(context.sessions, run_id).error or ""
    assert "DeviceUnavailableError" in error and "no CUDA device" in error


def test_a_stored_spec_that_no_longer_validates_fails_cleanly(context: RunContext) -> None:
    run_id = queue_run(context.sessions, tiny_capacity_spec())
    with context.sessions.begin() as session:
        experiment = session.get(Run, run_id)
        assert experiment is not None
        experiment.spec = {**experiment.spec, "retired_field": 1}
    assert execute_run(context, run_id) is RunStatus.failed
    assert "invalid spec" in (load(context.sessions, run_id).error or "")


def test_a_requeued_run_resumes_from_its_checkpoint_without_duplicate_points(
    context: RunContext,
) -> None:
    run_id = queue_run(context.sessions, tiny_capacity_spec())
    assert execute_run(context, run_id) is RunStatus.succeeded
    with context.sessions() as session:
        before = repository.metric_series(session, run_id)
    # Pretend the worker died after the step-30 checkpoint: drop the newer checkpoint,
    # leave stale points behind, and put the run back in the queue.
    checkpoints = context.artifacts.checkpoint_dir(run_id)
    for folder in checkpoints.glob("step_000000060"):
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    with context.sessions.begin() as session:
        experiment = session.get(Run, run_id)
        assert experiment is not None
        experiment.status = RunStatus.queued
    assert execute_run(context, run_id) is RunStatus.succeeded
    experiment = load(context.sessions, run_id)
    assert experiment.attempts == 2
    assert (
        experiment.result is not None and experiment.result["training"]["resumed_from_step"] == 30
    )
    with context.sessions() as session:
        after = repository.metric_series(session, run_id)
    assert after.keys() == before.keys()
    for key in before:
        assert after[key].steps == before[key].steps, key
        assert after[key].values == pytest.approx(before[key].values), key


def test_a_checkpoint_written_but_never_recorded_is_not_resumed_from(
    context: RunContext,
) -> None:
    """The worker died after writing the step-60 checkpoint's files and before it stored
    the metrics up to it (and recorded it): the re-run resumes from step 30, the newest
    recorded checkpoint, and every point is there once."""
    run_id = queue_run(context.sessions, tiny_capacity_spec())
    assert execute_run(context, run_id) is RunStatus.succeeded
    with context.sessions() as session:
        before = repository.metric_series(session, run_id)
    with context.sessions.begin() as session:
        repository.prune_checkpoint_artifacts(session, run_id, keep_steps=[30])
        repository.delete_metrics_from_step(session, run_id, 45)  # flushed up to step 44
        experiment = session.get(Run, run_id)
        assert experiment is not None
        experiment.status = RunStatus.queued
    assert (context.artifacts.checkpoint_dir(run_id) / "step_000000060").is_dir()
    assert execute_run(context, run_id) is RunStatus.succeeded
    experiment = load(context.sessions, run_id)
    assert experiment.result is not None
    assert experiment.result["training"]["resumed_from_step"] == 30
    with context.sessions() as session:
        after = repository.metric_series(session, run_id)
    for key in before:
        assert after[key].steps == before[key].steps, key


def test_non_finite_values_become_nulls_not_lost_runs(context: RunContext) -> None:
    run_id = queue_run(context.sessions, tiny_capacity_spec())
    reporter = DatabaseReporter(
        context.sessions,
        context.artifacts,
        run_id,
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
    )
    reporter.log_metrics(1, {"loss": float("nan"), "acc": 0.5, "grad": float("inf")})
    with context.sessions() as session:
        series = repository.metric_series(session, run_id)
    assert {key: s.values for key, s in series.items()} == {
        "loss": [None],
        "acc": [0.5],
        "grad": [None],
    }
    nested = {"a": [1.0, float("nan")], "b": {"c": float("-inf")}}
    assert json_safe(nested) == {"a": [1.0, None], "b": {"c": None}}


def test_a_run_past_its_wall_time_limit_fails_saying_so(context: RunContext) -> None:
    spec = tiny_capacity_spec(max_wall_s=1, train={"steps": 1_000_000, "checkpoint_every": 10**6})
    run_id = queue_run(context.sessions, spec)
    assert execute_run(context, run_id) is RunStatus.failed
    error = load(context.sessions, run_id).error or ""
    assert error.startswith("time limit exceeded") and "after 1 s" in error


def test_a_worker_whose_run_was_taken_back_stops_and_changes_nothing(
    context: RunContext,
) -> None:
    import threading
    import time

    from sqlalchemy import update

    from store.models import utcnow

    fast = RunContext(
        sessions=context.sessions,
        artifacts=context.artifacts,
        worker_name="old-worker",
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
        heartbeat_interval_s=0.1,
    )
    run_id = queue_run(
        context.sessions, tiny_capacity_spec(train={"steps": 1_000_000})
    )  # never ends
    outcome: list[RunStatus | None] = []
    worker = threading.Thread(target=lambda: outcome.append(execute_run(fast, run_id)))
    worker.start()
    deadline = time.monotonic() + 60
    while load(context.sessions, run_id).progress == 0.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # What the reaper does to a run it believes lost: back to the queue, worker cleared.
    with context.sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(status=RunStatus.queued, worker=None, heartbeat_at=utcnow())
        )
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert outcome == [None]
    after = load(context.sessions, run_id)
    assert (after.status, after.worker, after.error) == (RunStatus.queued, None, None)
    # A late finish from the old worker is refused by the fence.
    with context.sessions.begin() as session:
        assert not runs.finish_run(session, run_id, {"stale": True}, worker="old-worker")


def test_a_retried_claim_whose_first_commit_landed_still_runs(context: RunContext) -> None:
    run_id = queue_run(context.sessions, tiny_capacity_spec())
    with context.sessions.begin() as session:
        assert runs.claim_run(session, run_id, context.worker_name)  # the "lost" first commit
    assert execute_run(context, run_id) is RunStatus.succeeded


def test_the_probes_a_run_lists_inherit_its_request_and_are_handed_to_its_process(
    sessions: sessionmaker[Session],
) -> None:
    from worker.probes import queue_auto_probes

    spec = tiny_capacity_spec(task="facts", probes=[{"kind": "loss_mia"}])
    experiment_id = queue_run(sessions, spec)
    with sessions.begin() as session:
        experiment = session.get(Run, experiment_id)
        assert experiment is not None
        experiment.priority, experiment.gpus, experiment.gpu_memory_gib = -2, 1, 40.0
        probes = parse_spec(spec).probes
        (probe_id,) = queue_auto_probes(session, experiment_id, probes, "gpu", "n@box:0001")
    probe = load(sessions, probe_id)
    assert (probe.priority, probe.gpus, probe.gpu_memory_gib) == (-2, 1, 40.0)
    assert probe.enqueued_at is not None and probe.dispatched_to == "n@box:0001"
