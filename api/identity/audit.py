"""/v1/audit: the audit log, for admins (store/audit.py says what is recorded)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.auth import ForbiddenError, PrincipalDep
from api.deps import DatabaseDep
from api.identity.schemas import NAME_PATTERN, AuditEventOut, AuditList, IsoDatetime
from api.openapi import FORBIDDEN
from store import audit
from store.audit import AuditAction

router = APIRouter(prefix="/v1/audit", tags=["audit"])

MAX_EVENT_ID = 2**63 - 1  # the id column's range (BIGINT)


@router.get("", response_model=AuditList, responses=FORBIDDEN)
async def list_audit_events(
    database: DatabaseDep,
    principal: PrincipalDep,
    action: AuditAction | None = None,
    actor: Annotated[
        str | None, Query(pattern=NAME_PATTERN, max_length=64, description="A user's name.")
    ] = None,
    project_id: uuid.UUID | None = None,
    since: IsoDatetime | None = None,
    before: Annotated[
        int | None,
        Query(ge=1, le=MAX_EVENT_ID, description="An event id: older events only (paging)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditList:
    """Events newest first: submissions, cancellations, keys created, expired or
    revoked, users and projects created, roles given and taken. Admins only."""
    if not principal.is_admin:
        raise ForbiddenError("the audit log is for admins (`memlab users add NAME --admin`)")

    def page(session: Session) -> AuditList:
        events = audit.list_events(
            session,
            limit=limit,
            before_id=before,
            action=action.value if action else None,
            actor_name=actor,
            project_id=project_id,
            since=since,
        )
        items = [AuditEventOut.of(event) for event in events]
        return AuditList(items=items, next_before=items[-1].id if len(items) == limit else None)

    return await database.run(page)
