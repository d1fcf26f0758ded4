"""The audit log: who submitted and cancelled runs, who created and revoked keys, who
changed whose role. An event is added in the same transaction as what it records, so
the log never claims an action that rolled back nor misses one that committed.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AuditEvent


class AuditAction(enum.StrEnum):
    experiment_submitted = "experiment.submitted"
    probe_submitted = "probe.submitted"
    sweep_submitted = "sweep.submitted"
    experiment_cancelled = "experiment.cancelled"
    probe_cancelled = "probe.cancelled"
    sweep_cancelled = "sweep.cancelled"
    user_created = "user.created"
    key_created = "key.created"
    key_expiry_set = "key.expiry_set"
    key_revoked = "key.revoked"
    session_opened = "session.opened"
    session_closed = "session.closed"
    project_created = "project.created"
    member_role_set = "member.role_set"
    member_removed = "member.removed"
    worker_drained = "worker.drained"


def record(
    session: Session,
    actor_id: uuid.UUID | None,
    actor_name: str,
    action: AuditAction,
    *,
    project_id: uuid.UUID | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the session; it is written with the caller's commit."""
    event = AuditEvent(
        actor_id=actor_id,
        actor_name=actor_name,
        action=action.value,
        project_id=project_id,
        target=target,
        detail=detail or {},
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    limit: int,
    before_id: int | None = None,
    action: str | None = None,
    actor_name: str | None = None,
    project_id: uuid.UUID | None = None,
    since: datetime | None = None,
) -> Sequence[AuditEvent]:
    """Events newest first; `before_id` pages on (pass the last id of the page before)."""
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(AuditEvent.id < before_id)
    if action is not None:
        statement = statement.where(AuditEvent.action == action)
    if actor_name is not None:
        statement = statement.where(AuditEvent.actor_name == actor_name)
    if project_id is not None:
        statement = statement.where(AuditEvent.project_id == project_id)
    if since is not None:
        statement = statement.where(AuditEvent.at >= since)
    return session.scalars(statement).all()
