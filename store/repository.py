"""Queries and writes over runs (experiments and probes), metric series and artifacts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.probes.spec import ProbeSpec
from core.spec_model import spec_hash
from core.specs import ExperimentSpec
from store.models import (
    LOCAL_PROJECT_ID,
    LOCAL_USER_ID,
    Artifact,
    IdempotencyKey,
    MetricPoint,
    Run,
    RunStatus,
    RunTag,
    RunType,
    SweepRun,
)
from store.query import Expr, Sort, compile_filter, compile_sort


def create_run(
    session: Session,
    *,
    spec: ExperimentSpec | ProbeSpec,
    name: str | None,
    tags: Sequence[str],
    queue: str,
    target_id: uuid.UUID | None = None,
    project_id: uuid.UUID = LOCAL_PROJECT_ID,
    submitted_by: uuid.UUID = LOCAL_USER_ID,
    priority: int = 0,
    gpus: int = 0,
    gpu_memory_gib: float = 0.0,
) -> Run:
    """Add a queued run for `spec` (the caller commits; the dispatcher hands it out): an
    experiment, or, given a probe spec and the `target_id` of the experiment it
    measures, a probe; it belongs to `project_id` and was submitted by `submitted_by`.
    `priority`, `gpus` and `gpu_memory_gib` say how it is handed out."""
    is_probe = isinstance(spec, ProbeSpec)
    if is_probe != (target_id is not None):
        raise ValueError("a probe needs a target experiment, and only a probe has one")
    run = Run(
        id=uuid.uuid4(),
        run_type=RunType.probe if is_probe else RunType.experiment,
        target_id=target_id,
        kind=spec.kind,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec_hash(spec),
        name=name,
        status=RunStatus.queued,
        queue=queue,
        attempts=0,
        cancel_requested=False,
        progress=0.0,
        tags=[RunTag(tag=tag) for tag in dict.fromkeys(tags)],
        project_id=project_id,
        submitted_by=submitted_by,
        priority=priority,
        gpus=gpus,
        gpu_memory_gib=gpu_memory_gib,
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: uuid.UUID) -> Run | None:
    """The run with this id, experiment or probe alike; the caller checks `run_type`."""
    return session.get(Run, run_id)


@dataclass(frozen=True)
class RunPage:
    """One page of a listing and the number of runs that match it in all."""

    items: list[Run]
    total: int


@dataclass(frozen=True)
class RunFilter:
    """What a listing of runs keeps: every field given must match (None = any)."""

    run_type: RunType
    kind: str | None = None
    status: RunStatus | None = None
    tag: str | None = None
    target_id: uuid.UUID | None = None
    sweep_id: uuid.UUID | None = None
    where: Expr | None = None
    projects: frozenset[uuid.UUID] | None = None  # None = of any project


def _filtered(query: Select[Any], kept: RunFilter, dialect: str) -> Select[Any]:
    """`query` (over Run) with `kept`'s filters applied, the sweep's aside."""
    query = query.where(Run.run_type == kept.run_type)
    if kept.projects is not None:
        query = query.where(Run.project_id.in_(kept.projects))
    if kept.target_id is not None:
        query = query.where(Run.target_id == kept.target_id)
    if kept.sweep_id is not None:
        query = query.where(
            Run.id.in_(select(SweepRun.run_id).where(SweepRun.sweep_id == kept.sweep_id))
        )
    if kept.kind is not None:
        query = query.where(Run.kind == kept.kind)
    if kept.status is not None:
        query = query.where(Run.status == kept.status)
    if kept.tag is not None:
        query = query.where(Run.id.in_(select(RunTag.run_id).where(RunTag.tag == kept.tag)))
    if kept.where is not None:
        query = query.where(compile_filter(kept.where, dialect))
    return query


def list_runs(
    session: Session,
    *,
    run_type: RunType,
    kind: str | None = None,
    status: RunStatus | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
    target_id: uuid.UUID | None = None,
    sweep_id: uuid.UUID | None = None,
    where: Expr | None = None,
    sort: Sort | None = None,
    projects: frozenset[uuid.UUID] | None = None,
) -> RunPage:
    """Runs of `run_type` matching every given filter (`list_kept_runs`)."""
    kept = RunFilter(run_type, kind, status, tag, target_id, sweep_id, where, projects)
    return list_kept_runs(session, kept, limit=limit, offset=offset, sort=sort)


def list_kept_runs(
    session: Session, kept: RunFilter, *, limit: int = 50, offset: int = 0, sort: Sort | None = None
) -> RunPage:
    """One page of the runs `kept` lets through, newest first; a sweep's children in the
    sweep's cell order. `where` and `sort` (store/query.py) compile to SQL here and the
    sort, when given, replaces either order."""
    dialect = session.get_bind().dialect.name
    query = _filtered(select(Run), replace(kept, sweep_id=None), dialect)
    order: tuple[Any, ...] = (Run.created_at.desc(), Run.id.desc())
    if kept.sweep_id is not None:
        query = query.join(SweepRun, SweepRun.run_id == Run.id).where(
            SweepRun.sweep_id == kept.sweep_id
        )
        order = (SweepRun.position,)
    if sort is not None:
        order = tuple(compile_sort(sort, dialect))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(*order).limit(limit).offset(offset)).all()
    return RunPage(list(items), total)


MAX_TAG_FACETS = 50


def run_facets(
    session: Session, kept: RunFilter, visible: frozenset[uuid.UUID] | None
) -> dict[str, dict[str, int]]:
    """Counts of the runs `kept` lets through, by status, kind, tag and project id. Each
    facet drops its own filter (the counts say what choosing another value would give;
    the project facet falls back to the `visible` projects), and lists values by count,
    the most common first (tags: the first MAX_TAG_FACETS)."""
    dialect = session.get_bind().dialect.name

    def counts(column: Any, query: Select[Any], limit: int | None = None) -> dict[str, int]:
        grouped = query.add_columns(column, func.count()).group_by(column)
        rows = session.execute(grouped.order_by(func.count().desc(), column).limit(limit)).all()
        return {str(value): count for value, count in rows}

    def runs(**dropped: Any) -> Select[Any]:
        return _filtered(select(), replace(kept, **dropped), dialect).select_from(Run)

    # Tags of the kept runs, by a subquery rather than a join: a `tag = …` in `where`
    # is an EXISTS over run_tags that a join would correlate away.
    kept_ids = _filtered(select(Run.id), replace(kept, tag=None), dialect)
    tagged = select().select_from(RunTag).where(RunTag.run_id.in_(kept_ids))
    return {
        "status": counts(Run.status, runs(status=None)),
        "kind": counts(Run.kind, runs(kind=None)),
        "tag": counts(RunTag.tag, tagged, MAX_TAG_FACETS),
        "project": counts(Run.project_id, runs(projects=visible)),
    }


def write_metrics(
    session: Session, run_id: uuid.UUID, points: Iterable[tuple[int, str, float | None]]
) -> int:
    """Bulk-write (step, key, value) points; a point already stored for that step is replaced.

    Replacing rather than failing means a resumed run, or a worker that lost its run a
    moment before noticing, can never make a later write of the series fail.
    """
    return write_metrics_of(session, {run_id: points})


def write_metrics_of(
    session: Session, points_by_run: Mapping[uuid.UUID, Iterable[tuple[int, str, float | None]]]
) -> int:
    """`write_metrics` for several runs in one statement (a batched group's members)."""
    rows = [
        {"run_id": run_id, "step": step, "key": key, "value": value}
        for run_id, points in points_by_run.items()
        for step, key, value in points
    ]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert_fn(MetricPoint)
    statement = statement.on_conflict_do_update(
        index_elements=["run_id", "key", "step"],
        set_={"value": statement.excluded.value},
    )
    session.execute(statement, rows)
    return len(rows)


def delete_metrics_from_step(session: Session, run_id: uuid.UUID, step: int) -> None:
    """Drop points at or after `step`: a resumed run rewrites them, so none is duplicated."""
    session.execute(
        delete(MetricPoint).where(MetricPoint.run_id == run_id, MetricPoint.step >= step)
    )


@dataclass(frozen=True)
class Series:
    steps: list[int]
    values: list[float | None]
    total_points: int


def metric_series(
    session: Session,
    run_id: uuid.UUID,
    keys: Sequence[str] | None = None,
    max_points: int | None = None,
) -> dict[str, Series]:
    """Each metric key's (step, value) series in step order, downsampled to `max_points`.

    Over the table's columns rather than the mapped class: a long run has 10⁵ points or
    more, and the ORM's per-row handling cost a third of the run page's metrics request
    (bench/dashboard.py)."""
    points = MetricPoint.__table__.c
    query = (
        select(points.key, points.step, points.value)
        .where(points.run_id == run_id)
        .order_by(points.key, points.step)
    )
    if keys:
        query = query.where(points.key.in_(keys))
    grouped: dict[str, tuple[list[int], list[float | None]]] = {}
    for key, step, value in session.execute(query):
        steps, values = grouped.setdefault(key, ([], []))
        steps.append(step)
        values.append(value)
    return {key: _downsample(steps, values, max_points) for key, (steps, values) in grouped.items()}


def _downsample(steps: list[int], values: list[float | None], max_points: int | None) -> Series:
    """Evenly spaced points, always keeping the first and the last."""
    total = len(steps)
    if max_points is None or total <= max_points:
        return Series(steps, values, total)
    if max_points == 1:
        return Series(steps[-1:], values[-1:], total)
    picks = sorted({round(i * (total - 1) / (max_points - 1)) for i in range(max_points)})
    return Series([steps[i] for i in picks], [values[i] for i in picks], total)


def metric_keys(session: Session, run_id: uuid.UUID) -> list[str]:
    return list(
        session.scalars(select(MetricPoint.key).where(MetricPoint.run_id == run_id).distinct())
    )


def record_artifact(session: Session, run_id: uuid.UUID, **fields: Any) -> None:
    """Insert or replace the artifact row for `fields['path']`."""
    session.execute(
        delete(Artifact).where(Artifact.run_id == run_id, Artifact.path == fields["path"])
    )
    session.add(Artifact(run_id=run_id, **fields))


def prune_checkpoint_artifacts(
    session: Session, run_id: uuid.UUID, keep_steps: Iterable[int]
) -> None:
    """Forget checkpoint rows whose files the trainer has pruned from disk."""
    session.execute(
        delete(Artifact).where(
            Artifact.run_id == run_id,
            Artifact.kind == "checkpoint",
            Artifact.step.not_in(list(keep_steps)),
        )
    )


def checkpoint_steps(session: Session, run_id: uuid.UUID) -> list[int]:
    """The steps of the run's recorded checkpoints (recorded once their metrics are stored)."""
    return [
        step
        for step in session.scalars(
            select(Artifact.step).where(Artifact.run_id == run_id, Artifact.kind == "checkpoint")
        )
        if step is not None
    ]


def list_artifacts(session: Session, run_id: uuid.UUID) -> list[Artifact]:
    return list(
        session.scalars(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id))
    )


def find_succeeded_with_hash(
    session: Session, spec_hash_value: str, project_id: uuid.UUID | None = None
) -> Run | None:
    """The newest succeeded experiment whose spec hashes to `spec_hash_value`, of
    `project_id` when given (a run is reused only where its project's members see it)."""
    query = select(Run).where(
        Run.spec_hash == spec_hash_value,
        Run.status == RunStatus.succeeded,
        Run.run_type == RunType.experiment,
    )
    if project_id is not None:
        query = query.where(Run.project_id == project_id)
    return session.scalars(query.order_by(Run.created_at.desc()).limit(1)).first()


def find_idempotency_key(session: Session, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, key)


def add_idempotency_key(
    session: Session, key: str, request_hash: str, experiment_id: uuid.UUID
) -> None:
    session.add(IdempotencyKey(key=key, request_hash=request_hash, experiment_id=experiment_id))
