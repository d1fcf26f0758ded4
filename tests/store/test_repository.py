"""Experiments, tags, metric series and artifacts persist and query the same on both databases."""

import uuid

from sqlalchemy.orm import Session, sessionmaker

from core.catalog import parse_spec
from store import repository
from store.models import RunStatus, RunType


def add(
    session: Session, seed: int = 0, tags: tuple[str, ...] = (), name: str | None = None
) -> uuid.UUID:
    spec = parse_spec({"kind": "capacity_tradeoff", "seed": seed})
    return repository.create_run(session, spec=spec, name=name, tags=list(tags), queue="cpu").id


def test_an_experiment_stores_its_full_spec_hash_and_tags(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        experiment_id = add(session, tags=("b", "a", "b"), name="first")
    with sessions() as session:
        experiment = repository.get_run(session, experiment_id)
        assert experiment is not None
        assert experiment.tag_names == ["a", "b"]
        assert experiment.spec["train"]["lr"] == 0.01  # defaults are stored, not implied
        assert len(experiment.spec_hash) == 64
        assert experiment.status is RunStatus.queued


def test_listing_is_newest_first_filtered_and_paginated(sessions: sessionmaker[Session]) -> None:
    ids = []
    for seed in range(5):
        with sessions.begin() as session:
            ids.append(add(session, seed=seed, tags=("even",) if seed % 2 == 0 else ()))
    with sessions() as session:
        page = repository.list_runs(session, run_type=RunType.experiment, limit=2, offset=1)
        assert page.total == 5
        assert [e.id for e in page.items] == [ids[3], ids[2]]
        evens = repository.list_runs(session, run_type=RunType.experiment, tag="even")
        assert [e.id for e in evens.items] == [ids[4], ids[2], ids[0]]
        assert (
            repository.list_runs(
                session, run_type=RunType.experiment, status=RunStatus.running
            ).total
            == 0
        )
        assert (
            repository.list_runs(
                session, run_type=RunType.experiment, kind="capacity_tradeoff"
            ).total
            == 5
        )


def test_metric_series_come_back_in_step_order_and_downsample_keeping_the_ends(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        experiment_id = add(session)
        points = [(step, "train/loss", 1.0 / step) for step in range(100, 0, -1)]
        points += [(10, "eval/acc", 0.5)]
        repository.write_metrics(session, experiment_id, points)
    with sessions() as session:
        series = repository.metric_series(session, experiment_id)
        assert series["train/loss"].steps == list(range(1, 101))
        assert series["eval/acc"].values == [0.5]
        small = repository.metric_series(session, experiment_id, ["train/loss"], max_points=5)
        assert list(small) == ["train/loss"]
        assert small["train/loss"].steps == [1, 26, 51, 75, 100]
        assert small["train/loss"].total_points == 100


def test_a_point_written_again_for_the_same_step_replaces_the_old_one(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        experiment_id = add(session)
        repository.write_metrics(session, experiment_id, [(1, "loss", 1.0), (2, "loss", 0.5)])
    with sessions.begin() as session:
        repository.write_metrics(session, experiment_id, [(2, "loss", 0.25), (3, "loss", 0.2)])
    with sessions() as session:
        series = repository.metric_series(session, experiment_id)["loss"]
    assert (series.steps, series.values) == ([1, 2, 3], [1.0, 0.25, 0.2])


def test_deleting_from_a_step_keeps_earlier_points(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        experiment_id = add(session)
        repository.write_metrics(
            session, experiment_id, [(s, "loss", float(s)) for s in range(1, 11)]
        )
        repository.delete_metrics_from_step(session, experiment_id, 6)
    with sessions() as session:
        assert repository.metric_series(session, experiment_id)["loss"].steps == [1, 2, 3, 4, 5]


def test_checkpoint_artifacts_are_replaced_and_pruned(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        experiment_id = add(session)
        for step in (10, 20, 30):
            repository.record_artifact(
                session,
                experiment_id,
                kind="checkpoint",
                step=step,
                path=f"x/step_{step}/model.safetensors",
                size_bytes=1,
                sha256="0" * 64,
            )
        repository.record_artifact(
            session,
            experiment_id,
            kind="artifact",
            step=None,
            path="x/table.csv",
            size_bytes=2,
            sha256="1" * 64,
        )
        repository.prune_checkpoint_artifacts(session, experiment_id, keep_steps=[20, 30])
    with sessions() as session:
        paths = [a.path for a in repository.list_artifacts(session, experiment_id)]
    assert paths == ["x/step_20/model.safetensors", "x/step_30/model.safetensors", "x/table.csv"]
