"""Who a request is, and what it may see and do.

With authentication on (`Settings.auth_enabled`), every route but the health checks
needs `Authorization: Bearer KEY`; a missing, unknown, revoked or expired key is a 401,
and a key over its rate limit (`api.rate_limits`) a 429 with `Retry-After`.
With it off (the embedded default on loopback) every request is the built-in `local`
user, who sees and may do everything, as before users existed.

What a user sees is the runs and sweeps of the projects it is a member of: anything
else answers 404, exactly as if it did not exist. An action its role there does not
allow answers 403, naming the role needed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import Database, get_database, get_settings
from api.errors import ApiError, NotFoundError
from api.rate_limits import RateLimiter
from store import audit, identity
from store.audit import AuditAction
from store.models import LOCAL_PROJECT_ID, LOCAL_USER_ID, Project, Role
from store.settings import Settings


class UnauthorizedError(ApiError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(ApiError):
    status_code = 403
    code = "forbidden"


class CsrfError(ForbiddenError):
    code = "csrf_token_invalid"


class RateLimitedError(ApiError):
    status_code = 429
    code = "rate_limited"


@dataclass(frozen=True)
class Principal:
    """The user a request acts as, with its role in each project it belongs to.

    sees_everything: the local user of a server without authentication.
    key_id: the API key the request presented (None for the local user).
    """

    user_id: uuid.UUID
    name: str
    is_admin: bool
    personal_project: uuid.UUID
    roles: Mapping[uuid.UUID, Role] = field(default_factory=dict)
    sees_everything: bool = False
    key_id: uuid.UUID | None = None
    is_session: bool = False  # authenticated by a dashboard session's key

    def visible_projects(self) -> frozenset[uuid.UUID] | None:
        """The projects whose rows this user may read; None = every project."""
        return None if self.sees_everything else frozenset(self.roles)

    def can_see(self, project_id: uuid.UUID) -> bool:
        return self.sees_everything or project_id in self.roles

    def audit(
        self,
        session: Session,
        action: AuditAction,
        *,
        project_id: uuid.UUID | None = None,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Add to the audit log that this user did `action` (written with the caller's
        commit)."""
        audit.record(
            session,
            self.user_id,
            self.name,
            action,
            project_id=project_id,
            target=target,
            detail=detail,
        )

    def require(
        self, project_id: uuid.UUID, needed: Role, action: str, what: str = "the run"
    ) -> None:
        """Allow `action` in `project_id` with at least the role `needed`: a 404 where the
        user cannot see the project, a 403 naming the role where it can but may not."""
        if self.sees_everything:
            return
        role = self.roles.get(project_id)
        if role is None:
            raise NotFoundError(f"{what} was not found")
        if role.rank < needed.rank:
            raise ForbiddenError(
                f"to {action} you need the {needed.value} role in this project; "
                f"yours is {role.value}"
            )


LOCAL_PRINCIPAL = Principal(
    user_id=LOCAL_USER_ID,
    name="local",
    is_admin=True,
    personal_project=LOCAL_PROJECT_ID,
    roles={LOCAL_PROJECT_ID: Role.maintainer},
    sees_everything=True,
)


def bearer_key(request: Request) -> str:
    """The key of an `Authorization: Bearer KEY` header, or a 401 saying what is missing."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise UnauthorizedError(
            "this server needs an API key: send `Authorization: Bearer KEY` (the CLI and "
            "SDK read MEMLAB_API_KEY; an admin creates users with `memlab users add`)"
        )
    return key.strip()


SESSION_COOKIE = "memlab_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_CSRF_CONTEXT = b"memlab dashboard csrf v1"


def csrf_token(session_key_value: str) -> str:
    """The CSRF token of a dashboard session: an HMAC of its key, so it needs no storage."""
    return hmac.new(session_key_value.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def session_key(request: Request) -> str | None:
    """The dashboard session key of the request's cookie (api/dashboard/session.py)."""
    return request.cookies.get(SESSION_COOKIE) or None


def _presented_key(request: Request) -> str:
    """The key of the Authorization header, else of the dashboard's session cookie; a
    cookie-authenticated request that changes something must carry the session's CSRF
    token, which a page from another origin cannot read."""
    if request.headers.get("authorization") is not None:
        return bearer_key(request)
    key = session_key(request)
    if key is None:
        return bearer_key(request)  # the 401 that says what is missing
    if request.method not in _SAFE_METHODS:
        # Bytes: a header with non-ASCII characters must be a 403 like any wrong token.
        sent = request.headers.get(CSRF_HEADER, "").encode("latin-1")
        if not hmac.compare_digest(sent, csrf_token(key).encode()):
            raise CsrfError(
                "this request came with a session cookie but without its CSRF token: send "
                "`X-CSRF-Token` (GET /v1/session gives it), or use an API key"
            )
    return key


async def get_principal(
    request: Request,
    database: Annotated[Database, Depends(get_database)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Principal:
    """The request's user (FastAPI resolves it once per request)."""
    if not settings.auth_enabled:
        return LOCAL_PRINCIPAL
    key = _presented_key(request)
    principal = await database.read(lambda connection: _principal_for(connection, key))
    if principal is None:
        raise UnauthorizedError("the API key is unknown, revoked or expired")
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None and principal.key_id is not None:
        # Off the event loop: the Redis limiter makes a network call.
        wait_s = await run_in_threadpool(limiter.hit, principal.key_id.hex)
        if wait_s is not None:
            raise RateLimitedError(
                f"this key made more than {settings.rate_limit_per_minute} requests in a "
                f"minute; retry in {wait_s:.1f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
    return principal


def _principal_for(connection: Connection, key: str) -> Principal | None:
    holder = identity.key_holder(connection, key)
    if holder is None:
        return None
    return Principal(
        user_id=holder.user_id,
        name=holder.name,
        is_admin=holder.is_admin,
        personal_project=holder.personal_project,
        roles=holder.roles,
        key_id=holder.key_id,
        is_session=holder.is_session,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def submission_project(
    session: Session, principal: Principal, project_id: uuid.UUID | None
) -> uuid.UUID:
    """The project a submission goes to (the user's personal one unless it names one),
    once it exists and the user is at least a member there."""
    project = project_id or principal.personal_project
    if session.get(Project, project) is None or not principal.can_see(project):
        # A project the user is not in answers as one that does not exist.
        message = f"no project {project}"
        raise UnknownProjectError(
            message, [{"path": "project_id", "message": message, "type": "unknown_project"}]
        )
    principal.require(project, Role.member, "submit to this project", what="the project")
    return project


class UnknownProjectError(ApiError):
    status_code = 422
    code = "unknown_project"


def scoped_idempotency_key(principal: Principal, key: str | None) -> str | None:
    """An Idempotency-Key as stored: per user, so that one user's key never replays
    another's run (the local user's keys are stored as given, as before users existed)."""
    if key is None or principal.sees_everything:
        return key
    scoped = f"{principal.user_id.hex}:{key}"
    if len(scoped) > MAX_STORED_KEY:
        scoped = f"{principal.user_id.hex}:{hashlib.sha256(key.encode()).hexdigest()}"
    return scoped


MAX_STORED_KEY = 200  # the idempotency-key columns' width
