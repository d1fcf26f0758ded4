"""A batched group executed against a real database: the path a worker takes when the
broker hands it a group's id."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.catalog import get_kind, parse_spec
from core.prepared import Prepared
from core.specs import TrainedSpec
from core.training import group
from core.training.trainer import IGNORE_INDEX
from store import repository, runs, sweeps
from store.artifacts import ArtifactStore
from store.db import make_engine, make_session_factory, migrate
from store.models import Run, RunStatus
from tests.conftest import tiny_capacity_spec
from tests.worker.test_runner import load, queue_run
from worker import groups
from worker.runner import RunContext, execute_run


@pytest.fixture
def sqlite_context(tmp_path: Path) -> RunContext:
    """A context on SQLite only, for the tests whose SQL the first test already runs on
    both databases."""
    url = f"sqlite:///{tmp_path / 'memlab.db'}"
    migrate(url)
    return RunContext(
        sessions=make_session_factory(make_engine(url)),
        artifacts=ArtifactStore(tmp_path / "artifacts"),
        worker_name="test",
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
    )


def member_spec(seed: int, lr: float = 0.01, **overrides: Any) -> dict[str, Any]:
    train = {"steps": 40, "eval_every": 20, "checkpoint_every": 20, "lr": lr, "min_lr": lr / 10}
    return tiny_capacity_spec(task="facts", n_facts=20, seed=seed, train=train, **overrides)


def queue_group(
    sessions: sessionmaker[Session], specs: list[dict[str, Any]]
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    with sessions.begin() as session:
        members = [
            repository.create_run(session, spec=parse_spec(s), name=None, tags=[], queue="cpu")
            for s in specs
        ]
        return sweeps.create_group(session, members).id, [m.id for m in members]


def loss_curve(context: RunContext, run_id: uuid.UUID) -> list[float]:
    with context.sessions() as session:
        values = repository.metric_series(session, run_id)["train/loss"].values
    return [v for v in values if v is not None]


def test_each_member_trains_batched_writes_its_own_rows_and_equals_its_solo_run(
    context: RunContext,
) -> None:
    specs = [member_spec(0), member_spec(1), member_spec(1, lr=0.003)]
    group_id, member_ids = queue_group(context.sessions, specs)
    assert execute_run(context, group_id) is RunStatus.succeeded
    assert load(context.sessions, group_id).result == {"members": 3, "batched": 3}
    for member_id in member_ids:
        member = load(context.sessions, member_id)
        assert member.status is RunStatus.succeeded and member.batched is True
        assert member.group_id == group_id and member.attempts == 1
        with context.sessions() as session:
            steps = repository.metric_series(session, member_id)["eval/facts"].steps
            checkpoints = {a.step for a in repository.list_artifacts(session, member_id)}
        assert steps == [20, 40] and checkpoints == {20, 40}
    alone_id = queue_run(context.sessions, specs[2])
    assert execute_run(context, alone_id) is RunStatus.succeeded
    alone, batched = load(context.sessions, alone_id), load(context.sessions, member_ids[2])
    assert alone.result is not None and batched.result is not None
    assert alone.result["final"] == batched.result["final"]
    # float32: a batched matmul sums in another order than a lone one, in the last bits.
    assert loss_curve(context, member_ids[2]) == pytest.approx(
        loss_curve(context, alone_id), rel=1e-4
    )


def test_a_member_cancelled_while_its_group_waited_is_not_run(sqlite_context: RunContext) -> None:
    group_id, member_ids = queue_group(sqlite_context.sessions, [member_spec(0), member_spec(1)])
    with sqlite_context.sessions.begin() as session:
        member = session.get(Run, member_ids[0])
        assert member is not None
        runs.request_cancel(session, member)
    assert execute_run(sqlite_context, group_id) is RunStatus.succeeded
    assert load(sqlite_context.sessions, member_ids[0]).status is RunStatus.cancelled
    alone = load(sqlite_context.sessions, member_ids[1])
    assert alone.status is RunStatus.succeeded and alone.batched is False  # one left: solo


def test_a_member_whose_stored_spec_no_longer_parses_fails_alone(
    sqlite_context: RunContext,
) -> None:
    group_id, member_ids = queue_group(
        sqlite_context.sessions, [member_spec(0), member_spec(1), member_spec(2)]
    )
    with sqlite_context.sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id == member_ids[0])
            .values(spec={"kind": "capacity_tradeoff", "n_facts": -1})
        )
    assert execute_run(sqlite_context, group_id) is RunStatus.succeeded
    broken = load(sqlite_context.sessions, member_ids[0])
    assert broken.status is RunStatus.failed and "invalid spec" in (broken.error or "")
    for member_id in member_ids[1:]:
        member = load(sqlite_context.sessions, member_id)
        assert member.status is RunStatus.succeeded and member.batched is True


def test_a_second_delivery_of_a_group_does_nothing(sqlite_context: RunContext) -> None:
    group_id, member_ids = queue_group(sqlite_context.sessions, [member_spec(0), member_spec(1)])
    assert execute_run(sqlite_context, group_id) is RunStatus.succeeded
    assert execute_run(sqlite_context, group_id) is None
    assert all(load(sqlite_context.sessions, i).attempts == 1 for i in member_ids)


def test_a_diverging_member_fails_alone_with_the_reason_and_the_others_succeed(
    sqlite_context: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = get_kind("capacity_tradeoff")
    assert kind.prepare is not None
    prepare = kind.prepare

    def prepare_seed_1_with_nothing_to_predict(spec: TrainedSpec) -> Prepared:
        prepared = prepare(spec)
        if spec.seed != 1:
            return prepared
        sample_batch = prepared.built.sample_batch

        def sample(rng: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
            inputs, targets = sample_batch(rng, device)
            return inputs, torch.full_like(targets, IGNORE_INDEX)  # its loss is 0/0 = NaN

        built = dataclasses.replace(prepared.built, sample_batch=sample)
        return dataclasses.replace(prepared, built=built)

    patched = dataclasses.replace(kind, prepare=prepare_seed_1_with_nothing_to_predict)
    monkeypatch.setattr(group, "get_kind", lambda name: patched)
    group_id, member_ids = queue_group(
        sqlite_context.sessions, [member_spec(0), member_spec(1), member_spec(2)]
    )
    assert execute_run(sqlite_context, group_id) is RunStatus.succeeded
    diverged = load(sqlite_context.sessions, member_ids[1])
    assert diverged.status is RunStatus.failed and diverged.batched is True
    assert "training diverged at step 0" in (diverged.error or "")
    for member_id in (member_ids[0], member_ids[2]):
        assert load(sqlite_context.sessions, member_id).status is RunStatus.succeeded


def test_a_failure_of_the_whole_group_ends_every_member_with_the_reason(
    sqlite_context: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory while stacking the ensemble")

    monkeypatch.setattr(groups, "run_group", out_of_memory)
    group_id, member_ids = queue_group(sqlite_context.sessions, [member_spec(0), member_spec(1)])
    assert execute_run(sqlite_context, group_id) is RunStatus.failed
    for run_id in (group_id, *member_ids):
        run = load(sqlite_context.sessions, run_id)
        assert run.status is RunStatus.failed
        assert "CUDA out of memory" in (run.error or "")


def test_a_worker_that_does_not_hold_the_group_claims_none_of_its_members(
    sqlite_context: RunContext,
) -> None:
    group_id, member_ids = queue_group(sqlite_context.sessions, [member_spec(0), member_spec(1)])
    with sqlite_context.sessions.begin() as session:
        assert runs.claim_run(session, group_id, "the-reaper's-choice")
        assert runs.claim_group_members(session, group_id, "a-replaced-worker") == []
    assert {load(sqlite_context.sessions, i).status for i in member_ids} == {RunStatus.queued}
