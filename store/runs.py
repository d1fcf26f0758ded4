"""The run state machine, enforced by conditional UPDATEs.

    queued → running → succeeded | failed | cancelled
    queued → cancelled                      (cancel before a worker claimed it)
    running → queued                        (the reaper: the worker was lost, attempts left)
    running → failed | cancelled            (the reaper: no attempts left, or cancel asked)

Every transition is one `UPDATE … WHERE id = ? AND status = ?`: when two workers receive
the same message, exactly one UPDATE matches, so a duplicate delivery does nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, or_, select, update
from sqlalchemy.orm import Session, aliased

from store.models import Run, RunStatus, utcnow
from store.workers import node_of


class IllegalTransitionError(Exception):
    """The run is not in a state that allows the requested change (HTTP 409)."""

    def __init__(self, run_id: uuid.UUID, status: RunStatus, action: str) -> None:
        super().__init__(f"cannot {action} run {run_id}: it is {status.value}")
        self.run_id = run_id
        self.status = status


def _transition(
    session: Session,
    run_id: uuid.UUID,
    from_status: RunStatus,
    *where: ColumnElement[bool],
    held_by: str | None = None,
    **values: Any,
) -> bool:
    """UPDATE the run if it is in `from_status` (and, given `held_by`, still that worker's;
    and wherever `where` holds)."""
    conditions = [Run.id == run_id, Run.status == from_status, *where]
    if held_by is not None:
        # Fencing: a worker that lost its run to the reaper can no longer touch it.
        conditions.append(Run.worker == held_by)
    result = session.execute(
        update(Run).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def wall_limit_s(spec: Mapping[str, Any], server_cap_s: int | None) -> int | None:
    """A run attempt's wall-time limit: the spec's `max_wall_s`, never beyond the server's
    cap. The one rule both the worker (which stops itself) and the reaper (which ends a
    run whose worker did not) apply."""
    limits = [s for s in (spec.get("max_wall_s"), server_cap_s) if isinstance(s, int)]
    return min(limits) if limits else None


def _claimed_by(worker: str) -> dict[str, Any]:
    """The values a claim sets: running, held by `worker`, one more attempt."""
    now = utcnow()
    return {
        "status": RunStatus.running,
        "worker": worker,
        "started_at": now,
        "heartbeat_at": now,
        "attempts": Run.attempts + 1,
        "error": None,
    }


def claim_run(session: Session, run_id: uuid.UUID, worker: str) -> bool:
    """queued → running for this worker; False if another delivery got there first, or if
    the run is now handed to another node or process (a stale message, left in a node's
    queue after the dispatcher handed the run out again: it must not take the slot and
    GPUs counted for the other)."""
    handed_here = or_(Run.dispatched_to.is_(None), Run.dispatched_to.in_([worker, node_of(worker)]))
    return _transition(session, run_id, RunStatus.queued, handed_here, **_claimed_by(worker))


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None: JSON columns refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(child) for child in value]
    return value


def finish_run(
    session: Session, run_id: uuid.UUID, result: dict[str, Any], worker: str | None = None
) -> bool:
    """running → succeeded with the kind's result (only by `worker`, when given); NaN and
    infinities in it are stored as null."""
    return _transition(
        session,
        run_id,
        RunStatus.running,
        held_by=worker,
        status=RunStatus.succeeded,
        result=json_safe(result),
        progress=1.0,
        finished_at=utcnow(),
    )


def fail_run(session: Session, run_id: uuid.UUID, error: str, worker: str | None = None) -> bool:
    """running → failed, keeping the error text (traceback included) for the user."""
    return _transition(
        session,
        run_id,
        RunStatus.running,
        held_by=worker,
        status=RunStatus.failed,
        error=error,
        finished_at=utcnow(),
    )


def mark_cancelled(
    session: Session, run_id: uuid.UUID, message: str, worker: str | None = None
) -> bool:
    """running → cancelled, after the engine stopped cleanly at a checkpoint."""
    return _transition(
        session,
        run_id,
        RunStatus.running,
        held_by=worker,
        status=RunStatus.cancelled,
        progress_message=message,
        finished_at=utcnow(),
    )


def request_cancel(session: Session, run: Run) -> RunStatus:
    """Cancel a queued run at once, or ask a running one to stop; the status it is now in.

    Raises IllegalTransitionError for a run that has already finished. Tried twice,
    because the reaper may move a run from running back to queued in between.
    """
    for _ in range(2):
        if _transition(
            session,
            run.id,
            RunStatus.queued,
            status=RunStatus.cancelled,
            cancel_requested=True,
            finished_at=utcnow(),
            progress_message="cancelled before it started",
        ):
            return RunStatus.cancelled
        if _transition(session, run.id, RunStatus.running, cancel_requested=True):
            return RunStatus.running
    session.refresh(run)
    raise IllegalTransitionError(run.id, run.status, "cancel")


def record_progress(
    session: Session,
    run_id: uuid.UUID,
    fraction: float,
    message: str,
    worker: str | None = None,
) -> bool:
    """Store progress and refresh the heartbeat; False if the run is not running (here)."""
    return _transition(
        session,
        run_id,
        RunStatus.running,
        held_by=worker,
        progress=max(0.0, min(1.0, fraction)),
        progress_message=message[:200],
        heartbeat_at=utcnow(),
    )


def record_members_progress(
    session: Session, run_ids: Sequence[uuid.UUID], fraction: float, message: str, worker: str
) -> list[uuid.UUID]:
    """`record_progress` for several runs at one point (a group's members step together),
    in one UPDATE; the ids among them that are not running on `worker` any more."""
    result = session.execute(
        update(Run)
        .where(Run.id.in_(run_ids), Run.status == RunStatus.running, Run.worker == worker)
        .values(
            progress=max(0.0, min(1.0, fraction)),
            progress_message=message[:200],
            heartbeat_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount == len(run_ids):
        return []
    held = set(
        session.scalars(
            select(Run.id).where(
                Run.id.in_(run_ids), Run.status == RunStatus.running, Run.worker == worker
            )
        )
    )
    return [run_id for run_id in run_ids if run_id not in held]


def mark_enqueued(session: Session, run_id: uuid.UUID, node: str | None = None) -> None:
    """Record that the run is handed out: to its shared queue, or to `node`'s own."""
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued)
        .values(enqueued_at=utcnow(), dispatched_to=node)
    )


def unmark_enqueued(session: Session, run_ids: Sequence[uuid.UUID]) -> None:
    """Undo `mark_enqueued` for runs the broker did not take after all (still queued)."""
    if run_ids:
        session.execute(
            update(Run)
            .where(Run.id.in_(run_ids), Run.status == RunStatus.queued)
            .values(enqueued_at=None, dispatched_to=None)
        )


def heartbeat(session: Session, run_id: uuid.UUID, worker: str) -> bool:
    """Refresh the heartbeat of a run this worker is running; False if it is not any more."""
    return _transition(session, run_id, RunStatus.running, held_by=worker, heartbeat_at=utcnow())


def recover_lost_run(
    session: Session, run: Run, stale_before: datetime, max_attempts: int
) -> RunStatus | None:
    """End or requeue a running run whose heartbeat is older than `stale_before`.

    Returns the status it moved to, or None when it beat again in the meantime (every
    UPDATE re-checks the staleness, so a live worker is never robbed of its run).
    """
    stale = (Run.status == RunStatus.running) & (Run.heartbeat_at < stale_before)
    values: dict[str, Any]
    if run.cancel_requested:
        target, values = RunStatus.cancelled, {"progress_message": "cancelled; its worker was lost"}
    elif run.attempts >= max_attempts:
        target = RunStatus.failed
        values = {
            "error": f"worker lost {run.attempts} times (the cap is {max_attempts}, "
            "MEMLAB_MAX_ATTEMPTS); the last checkpoint is kept"
        }
    else:
        # Back in the queue: no worker, unpublished, and no worker's last progress message
        # in the way of the dispatcher's reason for the wait.
        target, values = (
            RunStatus.queued,
            {"worker": None, "enqueued_at": None, "dispatched_to": None, "progress_message": None},
        )
    if target is not RunStatus.queued:
        values["finished_at"] = utcnow()
    result = session.execute(
        update(Run)
        .where(Run.id == run.id, stale)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return target if result.rowcount == 1 else None


def claim_group_members(session: Session, group_id: uuid.UUID, worker: str) -> list[uuid.UUID]:
    """queued → running for this worker, for every queued member of a group it holds; the
    ids of all the members it now runs (a retried claim finds those it took already).

    A member cancelled while the group waited stays cancelled and is not run. Fenced:
    only while the group itself is running on this worker, so a worker the reaper has
    replaced cannot take the members of the group it lost.
    """
    group = aliased(Run)
    held = (
        select(group.id)
        .where(group.id == group_id, group.status == RunStatus.running, group.worker == worker)
        .exists()
    )
    session.execute(
        update(Run)
        .where(Run.group_id == group_id, Run.status == RunStatus.queued, held)
        .values(**_claimed_by(worker))
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(Run.id)
            .where(
                Run.group_id == group_id,
                Run.status == RunStatus.running,
                Run.worker == worker,
            )
            .order_by(Run.created_at, Run.id)
        )
    )


def heartbeat_group(session: Session, group_id: uuid.UUID, worker: str) -> bool:
    """Refresh the heartbeat of a group and of the members this worker runs in it; False
    when the group is not this worker's any more."""
    session.execute(
        update(Run)
        .where(Run.group_id == group_id, Run.status == RunStatus.running, Run.worker == worker)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return heartbeat(session, group_id, worker)


def settle_group_members(
    session: Session, group_id: uuid.UUID, group_status: RunStatus, message: str
) -> None:
    """Bring a group's unfinished members along when the reaper moves the group: back to
    the queue with it, or to the end it came to (`message` says why)."""
    unfinished = Run.group_id == group_id, Run.status.in_([RunStatus.queued, RunStatus.running])
    values: dict[str, Any]
    if group_status is RunStatus.queued:
        values = {
            "status": RunStatus.queued,
            "worker": None,
            "enqueued_at": None,
            "dispatched_to": None,
            "progress_message": None,
        }
    else:
        text = "error" if group_status is RunStatus.failed else "progress_message"
        values = {"status": group_status, text: message, "finished_at": utcnow()}
    session.execute(
        update(Run).where(*unfinished).values(**values).execution_options(synchronize_session=False)
    )
