"""/v1/session: a dashboard login, an API key exchanged for an HttpOnly session cookie.

The session is a key of its own (`store.identity.issue_key(session_of=…)`): short-lived,
of the same user, and good only while the key it was exchanged for is (revoked or
expired, it ends the session: `store.identity.key_holder`). The browser holds it only
in an HttpOnly, SameSite=Strict cookie, so a page's scripts never see it. A request
that authenticates by that cookie and changes something must also send the session's
CSRF token in `X-CSRF-Token`: the token is derived from the session key, and only a
same-origin script can read it (from GET /v1/session).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.auth import (
    SESSION_COOKIE,
    Principal,
    UnauthorizedError,
    csrf_token,
    get_principal,
    session_key,
)
from api.deps import DatabaseDep, SettingsDep
from store import audit, identity
from store.audit import AuditAction
from store.models import User, utcnow

router = APIRouter(prefix="/v1/session", tags=["keys"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=200, description="Your API key (mlk_…).")


class SessionOut(BaseModel):
    name: str
    is_admin: bool
    authenticated: bool = Field(
        description="False on a server without authentication: no login is needed."
    )
    csrf_token: str | None = Field(
        description="Send it as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE."
    )
    expires_at: datetime | None


@router.post("", response_model=SessionOut)
async def log_in(
    body: LoginIn,
    request: Request,
    response: Response,
    database: DatabaseDep,
    settings: SettingsDep,
) -> SessionOut:
    """Log in: a valid API key opens a session, set as an HttpOnly cookie."""
    if not settings.auth_enabled:
        return SessionOut(
            name="local", is_admin=True, authenticated=False, csrf_token=None, expires_at=None
        )

    def open_session(session: Session) -> tuple[SessionOut, str]:
        parent = identity.valid_key(session, body.api_key)
        if parent is None or parent.session_of is not None:
            raise UnauthorizedError("the API key is unknown, revoked or expired")
        user = session.get(User, parent.user_id)
        assert user is not None  # a key's user is deleted with it
        expires = utcnow() + timedelta(hours=settings.session_hours)
        if parent.expires_at is not None:
            expires = min(expires, parent.expires_at)
        issued = identity.issue_key(
            session, user.id, label="dashboard session", expires_at=expires, session_of=parent.id
        )
        audit.record(session, user.id, user.name, AuditAction.session_opened, target=parent.prefix)
        session.commit()
        out = SessionOut(
            name=user.name,
            is_admin=user.is_admin,
            authenticated=True,
            csrf_token=csrf_token(issued.key),
            expires_at=expires,
        )
        return out, issued.key

    out, key = await database.run(open_session)
    assert out.expires_at is not None
    response.set_cookie(
        SESSION_COOKIE,
        key,
        max_age=max(1, int((out.expires_at - utcnow()).total_seconds())),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return out


@router.get("", response_model=SessionOut)
async def get_session(
    request: Request, principal: Annotated[Principal, Depends(get_principal)]
) -> SessionOut:
    """The caller and, for a cookie session, its CSRF token (401 without a login)."""
    by_cookie = request.headers.get("authorization") is None
    key = session_key(request) if by_cookie else None
    return SessionOut(
        name=principal.name,
        is_admin=principal.is_admin,
        authenticated=not principal.sees_everything,
        csrf_token=csrf_token(key) if key else None,
        expires_at=None,
    )


@router.delete("", status_code=204)
async def log_out(request: Request, database: DatabaseDep) -> Response:
    """Log out: the session's key is revoked and its cookie cleared."""
    key = session_key(request)
    if key is not None:

        def close(session: Session) -> None:
            row = identity.valid_key(session, key)
            if row is not None and row.session_of is not None:
                identity.revoke_key(session, row.id)
                user = session.get(User, row.user_id)
                name = user.name if user else "?"
                audit.record(
                    session, row.user_id, name, AuditAction.session_closed, target=row.prefix
                )
                session.commit()

        await database.run(close)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
