"""Queries and writes over sweeps: their rows, their children's cells, their groups and
the counts per status a sweep's progress is made of."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, case, cast, func, select
from sqlalchemy.orm import Session, aliased

from store.models import (
    LOCAL_PROJECT_ID,
    LOCAL_USER_ID,
    TERMINAL_STATUSES,
    Run,
    RunStatus,
    RunType,
    Sweep,
    SweepIdempotencyKey,
    SweepRun,
)


def create_sweep(
    session: Session,
    *,
    kind: str,
    name: str | None,
    tags: Sequence[str],
    request: dict[str, Any],
    n_runs: int,
    project_id: uuid.UUID = LOCAL_PROJECT_ID,
    submitted_by: uuid.UUID = LOCAL_USER_ID,
) -> Sweep:
    sweep = Sweep(
        id=uuid.uuid4(),
        kind=kind,
        name=name,
        tags=list(dict.fromkeys(tags)),
        request=request,
        n_runs=n_runs,
        n_groups=0,
        cancel_requested=False,
        project_id=project_id,
        submitted_by=submitted_by,
    )
    session.add(sweep)
    session.flush()
    return sweep


def add_child(
    session: Session, sweep: Sweep, run: Run, position: int, cell: dict[str, Any]
) -> None:
    """Make `run` the sweep's child at `cell`; a run the sweep created also records it."""
    session.add(SweepRun(sweep_id=sweep.id, run_id=run.id, position=position, cell=cell))
    if run.sweep_id is None and run.status is RunStatus.queued:
        run.sweep_id, run.sweep_cell = sweep.id, cell


def create_group(session: Session, members: Sequence[Run]) -> Run:
    """A queued group that trains `members` (queued experiments of one shape) as one
    batched ensemble; they name it in `group_id`, and only the group is published."""
    first = members[0]
    group = Run(
        id=uuid.uuid4(),
        run_type=RunType.group,
        kind=first.kind,
        spec=first.spec,  # the members' shared spec: its limits (max_wall_s) are the group's
        spec_hash=first.spec_hash,
        name=f"batched group of {len(members)}",
        status=RunStatus.queued,
        queue=first.queue,
        attempts=0,
        cancel_requested=False,
        progress=0.0,
        tags=[],
        project_id=first.project_id,
        submitted_by=first.submitted_by,
        # The members come from one sweep request: they share how they are handed out.
        priority=first.priority,
        gpus=first.gpus,
        gpu_memory_gib=first.gpu_memory_gib,
    )
    session.add(group)
    session.flush()
    for member in members:
        member.group_id = group.id
    return group


def get_sweep(session: Session, sweep_id: uuid.UUID) -> Sweep | None:
    return session.get(Sweep, sweep_id)


@dataclass(frozen=True)
class SweepProgress:
    """A sweep's children by status, the status that makes the sweep's, the fraction of
    its work done (an ended child counts whole, a running one by its progress), the last
    child's end once every child has ended, and its children's probes by status."""

    counts: dict[str, int]
    status: RunStatus
    progress: float
    finished_at: datetime | None
    probe_counts: dict[str, int]


def sweep_status(counts: dict[str, int]) -> RunStatus:
    """queued or running while a child has not ended; then succeeded when every child
    did, failed when any failed, else cancelled."""
    total = sum(counts.values())
    ended = sum(counts[s.value] for s in TERMINAL_STATUSES)
    if ended < total:
        return RunStatus.running if counts[RunStatus.queued.value] < total else RunStatus.queued
    if counts[RunStatus.succeeded.value] == total:
        return RunStatus.succeeded
    return RunStatus.failed if counts[RunStatus.failed.value] else RunStatus.cancelled


def sweep_progress(session: Session, sweep_id: uuid.UUID) -> SweepProgress:
    """Counts per status, progress and end time of the sweep's children, in one query."""
    done = case((Run.status.in_(list(TERMINAL_STATUSES)), 1.0), else_=Run.progress)
    rows = session.execute(
        select(Run.status, func.count(), func.sum(done), func.max(Run.finished_at))
        .join(SweepRun, SweepRun.run_id == Run.id)
        .where(SweepRun.sweep_id == sweep_id)
        .group_by(Run.status)
    ).all()
    counts = {status.value: 0 for status in RunStatus}
    work, ends = 0.0, []
    for status, count, status_work, status_end in rows:
        counts[RunStatus(status).value] = count
        work += float(status_work or 0.0)
        if status_end is not None:
            ends.append(status_end)
    total = sum(counts.values())
    probe_counts = _probe_counts(session, sweep_id)
    status = sweep_status(counts)
    if status.is_terminal and _unfinished(probe_counts):
        # The table reads the probes' results: the sweep has not ended until they have.
        status = RunStatus.running
    finished = max(ends) if status.is_terminal and ends else None
    return SweepProgress(counts, status, work / total if total else 1.0, finished, probe_counts)


def _probe_counts(session: Session, sweep_id: uuid.UUID) -> dict[str, int]:
    """The children's probes by status (a worker adds the probes a spec lists in the
    transaction that ends its run, so none is missing once the children have ended)."""
    children = select(SweepRun.run_id).where(SweepRun.sweep_id == sweep_id)
    rows = session.execute(
        select(Run.status, func.count())
        .where(Run.run_type == RunType.probe, Run.target_id.in_(children))
        .group_by(Run.status)
    ).all()
    counts = {status.value: 0 for status in RunStatus}
    for status, count in rows:
        counts[RunStatus(status).value] = count
    return counts


def _unfinished(counts: dict[str, int]) -> int:
    return sum(n for status, n in counts.items() if not RunStatus(status).is_terminal)


@dataclass(frozen=True)
class SweepPage:
    items: list[Sweep]
    total: int


def list_sweeps(
    session: Session,
    *,
    kind: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
    projects: frozenset[uuid.UUID] | None = None,
) -> SweepPage:
    """Sweeps newest first, of one kind and with one tag when given, of `projects` only
    (None = of any project)."""
    query = select(Sweep)
    if projects is not None:
        query = query.where(Sweep.project_id.in_(projects))
    if kind is not None:
        query = query.where(Sweep.kind == kind)
    if tag is not None:
        # Tags are a JSON list of strings without quotes or backslashes (the API's Tag
        # pattern), so the quoted tag appears in the stored text exactly when it is one.
        pattern = '%"' + tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
        query = query.where(cast(Sweep.tags, String).like(pattern, escape="\\"))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit).offset(offset)
    ).all()
    return SweepPage(list(items), total)


def unfinished_children(session: Session, sweep_id: uuid.UUID) -> list[Run]:
    """The sweep's children that have not ended, and the groups that would run them."""
    children = list(
        session.scalars(
            select(Run)
            .join(SweepRun, SweepRun.run_id == Run.id)
            .where(SweepRun.sweep_id == sweep_id, Run.status.not_in(list(TERMINAL_STATUSES)))
        )
    )
    group_ids = {child.group_id for child in children if child.group_id is not None}
    groups = (
        session.scalars(
            select(Run).where(Run.id.in_(group_ids), Run.status.not_in(list(TERMINAL_STATUSES)))
        ).all()
        if group_ids
        else []
    )
    return children + list(groups)


def find_idempotency_key(session: Session, key: str) -> SweepIdempotencyKey | None:
    return session.get(SweepIdempotencyKey, key)


def add_idempotency_key(session: Session, key: str, request_hash: str, sweep_id: uuid.UUID) -> None:
    session.add(SweepIdempotencyKey(key=key, request_hash=request_hash, sweep_id=sweep_id))


def _has_unfinished_child(sweep_id: Any) -> ColumnElement[bool]:
    """EXISTS a child of the sweep `sweep_id` (a value or a column) that has not ended."""
    child = aliased(Run)
    return (
        select(SweepRun.run_id)
        .join(child, child.id == SweepRun.run_id)
        .where(SweepRun.sweep_id == sweep_id, child.status.not_in(list(TERMINAL_STATUSES)))
        .exists()
    )


def has_ended(session: Session, sweep_id: uuid.UUID) -> bool:
    """Every child of the sweep has ended (succeeded, failed or cancelled)."""
    return not session.scalar(select(_has_unfinished_child(sweep_id)))


def still_waiting() -> ColumnElement[bool]:
    """For a query over runs: the run waits for a sweep (`after_sweep_id`) of which a
    child has not ended yet. The dispatcher hands out no run for which this holds."""
    return Run.after_sweep_id.is_not(None) & _has_unfinished_child(Run.after_sweep_id)


def point_idempotency_key(
    session: Session, key: str, request_hash: str, sweep_id: uuid.UUID
) -> None:
    """Make `key` answer with `sweep_id` from now on (adding the key if it is new)."""
    row = session.get(SweepIdempotencyKey, key)
    if row is None:
        session.add(SweepIdempotencyKey(key=key, request_hash=request_hash, sweep_id=sweep_id))
    else:
        row.request_hash, row.sweep_id = request_hash, sweep_id
