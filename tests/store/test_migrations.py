"""Alembic migrations build exactly the schema the models describe, on both databases,
and keep the rows a database already holds."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Uuid,
    column,
    delete,
    func,
    insert,
    select,
    table,
)

from store import repository
from store.db import alembic_config, make_engine, make_session_factory, migrate
from store.models import (
    Artifact,
    Base,
    IdempotencyKey,
    MetricPoint,
    Run,
    RunStatus,
    RunTag,
    RunType,
)
from tests.conftest import empty_postgres_database

# The revision before `experiments` became `runs` (0004).
RUNS_RENAME_PARENT = "0003"


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_migrating_twice_is_harmless(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)


@pytest.fixture(params=["sqlite", "postgres"])
def blank_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, for migrating one revision at a time."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    with empty_postgres_database("memlab_migration") as url:
        yield url


# The tables as revision 0003 left them, with only the columns these tests write.
_OLD_EXPERIMENTS = table(
    "experiments",
    column("id", Uuid),
    column("run_type", String),
    column("target_id", Uuid),
    column("kind", String),
    column("spec", JSON),
    column("spec_hash", String),
    column("status", String),
    column("queue", String),
    column("attempts", Integer),
    column("cancel_requested", Boolean),
    column("progress", Float),
    column("result", JSON),
    column("created_at", DateTime(timezone=True)),
)
_OLD_TAGS = table("experiment_tags", column("experiment_id", Uuid), column("tag", String))
_OLD_METRICS = table(
    "metric_points",
    column("experiment_id", Uuid),
    column("key", String),
    column("step", Integer),
    column("value", Float),
)
_OLD_ARTIFACTS = table(
    "artifacts",
    column("experiment_id", Uuid),
    column("kind", String),
    column("step", Integer),
    column("path", String),
    column("size_bytes", Integer),
    column("sha256", String),
    column("created_at", DateTime(timezone=True)),
)
_OLD_IDEMPOTENCY_KEYS = table(
    "idempotency_keys",
    column("key", String),
    column("request_hash", String),
    column("experiment_id", Uuid),
    column("created_at", DateTime(timezone=True)),
)


def _write_before_the_rename(url: str, experiment_id: uuid.UUID, probe_id: uuid.UUID) -> None:
    """An experiment with a tag, a metric, a checkpoint and an idempotency key, and a
    probe of it, written into the 0003 tables."""
    now = datetime.now(UTC)
    common = {
        "spec_hash": "0" * 64,
        "status": "succeeded",
        "queue": "cpu",
        "attempts": 1,
        "cancel_requested": False,
        "progress": 1.0,
        "created_at": now,
    }
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(_OLD_EXPERIMENTS),
            [
                {
                    "id": experiment_id,
                    "run_type": "experiment",
                    "target_id": None,
                    "kind": "capacity_tradeoff",
                    "spec": {"kind": "capacity_tradeoff"},
                    "result": {"final": {"train/acc": 0.5}},
                    **common,
                },
                {
                    "id": probe_id,
                    "run_type": "probe",
                    "target_id": experiment_id,
                    "kind": "loss_mia",
                    "spec": {"kind": "loss_mia"},
                    "result": {"auc": 0.75},
                    **common,
                },
            ],
        )
        connection.execute(
            insert(_OLD_TAGS),
            [
                {"experiment_id": experiment_id, "tag": "before"},
                {"experiment_id": probe_id, "tag": "p"},
            ],
        )
        connection.execute(
            insert(_OLD_METRICS),
            [{"experiment_id": experiment_id, "key": "train/loss", "step": 10, "value": 1.5}],
        )
        connection.execute(
            insert(_OLD_ARTIFACTS),
            [
                {
                    "experiment_id": experiment_id,
                    "kind": "checkpoint",
                    "step": 10,
                    "path": f"{experiment_id}/step-10",
                    "size_bytes": 123,
                    "sha256": "f" * 64,
                    "created_at": now,
                }
            ],
        )
        connection.execute(
            insert(_OLD_IDEMPOTENCY_KEYS),
            [
                {
                    "key": "k1",
                    "request_hash": "a" * 64,
                    "experiment_id": experiment_id,
                    "created_at": now,
                }
            ],
        )
    engine.dispose()


def test_runs_written_before_the_rename_survive_it(blank_database_url: str) -> None:
    url = blank_database_url
    experiment_id, probe_id = uuid.uuid4(), uuid.uuid4()
    migrate(url, RUNS_RENAME_PARENT)
    _write_before_the_rename(url, experiment_id, probe_id)

    migrate(url)

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        experiment = repository.get_run(session, experiment_id)
        probe = repository.get_run(session, probe_id)
        assert experiment is not None and probe is not None
        assert (experiment.run_type, experiment.kind) == (RunType.experiment, "capacity_tradeoff")
        assert experiment.status is RunStatus.succeeded
        assert experiment.result == {"final": {"train/acc": 0.5}}
        assert experiment.tag_names == ["before"] and probe.tag_names == ["p"]
        assert (probe.run_type, probe.target_id) == (RunType.probe, experiment_id)
        assert repository.metric_series(session, experiment_id)["train/loss"].values == [1.5]
        assert [a.path for a in repository.list_artifacts(session, experiment_id)] == [
            f"{experiment_id}/step-10"
        ]
        key = repository.find_idempotency_key(session, "k1")
        assert key is not None and key.experiment_id == experiment_id
        listed = repository.list_runs(session, run_type=RunType.probe, target_id=experiment_id)
        assert [p.id for p in listed.items] == [probe_id]
    # The foreign keys now point at `runs` and still cascade: deleting the experiment
    # takes its probe and every row that hangs off either.
    with sessions.begin() as session:
        session.execute(delete(Run).where(Run.id == experiment_id))
    with engine.connect() as connection:
        for counted in (Run, RunTag, MetricPoint, Artifact, IdempotencyKey):
            assert connection.scalar(select(func.count()).select_from(counted)) == 0, counted
    engine.dispose()


def test_the_rename_can_be_undone_without_losing_rows(blank_database_url: str) -> None:
    url = blank_database_url
    experiment_id, probe_id = uuid.uuid4(), uuid.uuid4()
    migrate(url, RUNS_RENAME_PARENT)
    _write_before_the_rename(url, experiment_id, probe_id)
    migrate(url)

    command.downgrade(alembic_config(url), RUNS_RENAME_PARENT)

    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.execute(
            select(_OLD_EXPERIMENTS.c.id, _OLD_EXPERIMENTS.c.target_id).order_by(
                _OLD_EXPERIMENTS.c.run_type
            )
        ).all() == [(experiment_id, None), (probe_id, experiment_id)]
        for old_table in (_OLD_TAGS, _OLD_METRICS, _OLD_ARTIFACTS, _OLD_IDEMPOTENCY_KEYS):
            assert connection.scalar(select(func.count()).select_from(old_table)) >= 1, old_table
    engine.dispose()
    migrate(url)  # and forward again
