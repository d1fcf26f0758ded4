"""/v1/keys: a user lists, creates, expires and revokes its own API keys; an admin
anyone's. Another user's key is a 404 to a non-admin, as if it did not exist."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy.orm import Session

from api.auth import ForbiddenError, Principal, PrincipalDep
from api.deps import DatabaseDep
from api.errors import NotFoundError, ValidationFailedError
from api.identity.schemas import NAME_PATTERN, KeyCreate, KeyCreated, KeyList, KeyOut, KeyUpdate
from api.openapi import FORBIDDEN
from store import identity
from store.audit import AuditAction
from store.models import ApiKey, User, utcnow

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.get("", response_model=KeyList, responses=FORBIDDEN)
async def list_keys(
    database: DatabaseDep,
    principal: PrincipalDep,
    user: Annotated[
        str | None,
        Query(pattern=NAME_PATTERN, max_length=64, description="Admins only: another user's keys."),
    ] = None,
) -> KeyList:
    """Your keys (revoked and expired ones too), newest first; prefixes only."""

    def listing(session: Session) -> KeyList:
        holder = _holder(session, principal, user, "user")
        now = utcnow()
        return KeyList(
            items=[KeyOut.of(key, holder.name, now) for key in identity.keys_of(session, holder.id)]
        )

    return await database.run(listing)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=FORBIDDEN
)
async def create_key(body: KeyCreate, database: DatabaseDep, principal: PrincipalDep) -> KeyCreated:
    """A new key, shown in this answer only: keep it (the server stores its SHA-256)."""

    _refuse_sessions(principal)

    def create(session: Session) -> KeyCreated:
        holder = _holder(session, principal, body.user, "user")
        now = utcnow()
        if body.expires_at is not None and body.expires_at <= now:
            raise _past_expiry("expires_at")
        issued = identity.issue_key(
            session, holder.id, label=body.label, expires_at=body.expires_at
        )
        _audit_key(session, principal, AuditAction.key_created, issued.prefix, holder.name)
        session.commit()
        row = session.get(ApiKey, issued.id)
        assert row is not None  # committed just above
        return KeyCreated(**KeyOut.of(row, holder.name, now).model_dump(), key=issued.key)

    return await database.run(create)


@router.patch("/{key_id}", response_model=KeyOut)
async def update_key(
    key_id: uuid.UUID, body: KeyUpdate, database: DatabaseDep, principal: PrincipalDep
) -> KeyOut:
    """Set when the key stops working (null: never). A revoked key stays revoked."""

    _refuse_sessions(principal)

    def update(session: Session) -> KeyOut:
        key, holder = _key_or_404(session, principal, key_id)
        now = utcnow()
        if key.session_of is not None:
            message = "a dashboard session's expiry is set when it opens; log out to end it"
            raise ValidationFailedError(
                message, [{"path": "expires_at", "message": message, "type": "session_key"}]
            )
        if body.expires_at is not None and body.expires_at <= now:
            raise _past_expiry("expires_at", "to stop a key now, revoke it")
        key.expires_at = body.expires_at
        detail = {"user": holder.name, "expires_at": _iso(body.expires_at)}
        principal.audit(
            session,
            AuditAction.key_expiry_set,
            target=key.prefix,
            detail=detail,
        )
        session.commit()
        return KeyOut.of(key, holder.name, now)

    return await database.run(update)


@router.post("/{key_id}/revoke", response_model=KeyOut)
async def revoke_key(key_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep) -> KeyOut:
    """Revoke the key: its next request is a 401. Revoking it again changes nothing."""

    def revoke(session: Session) -> KeyOut:
        key, holder = _key_or_404(session, principal, key_id)
        if key.revoked_at is None:
            identity.revoke_key(session, key.id)
            _audit_key(session, principal, AuditAction.key_revoked, key.prefix, holder.name)
            session.commit()
        return KeyOut.of(key, holder.name, utcnow())

    return await database.run(revoke)


def _refuse_sessions(principal: Principal) -> None:
    """Keys are made and extended with an API key: a stolen dashboard cookie must not
    become lasting access (revoking stays open to a session)."""
    if principal.is_session:
        raise ForbiddenError(
            "keys are made and changed with an API key (`memlab keys create`, "
            "`memlab keys expire`), not from a dashboard session"
        )


def _holder(session: Session, principal: Principal, name: str | None, path: str) -> User:
    """The user whose keys a request is about: the caller, or for an admin the one named."""
    if name is None or name == principal.name:
        user = session.get(User, principal.user_id)
    elif not principal.is_admin:
        raise ForbiddenError("only an admin manages another user's keys")
    else:
        user = identity.user_named(session, name)
        if user is None:
            message = f"no user named {name!r}"
            raise ValidationFailedError(
                message, [{"path": path, "message": message, "type": "unknown_user"}]
            )
    assert user is not None  # the caller's row exists: its key was just checked
    return user


def _key_or_404(session: Session, principal: Principal, key_id: uuid.UUID) -> tuple[ApiKey, User]:
    key = session.get(ApiKey, key_id)
    if key is None or not (principal.is_admin or key.user_id == principal.user_id):
        raise NotFoundError("the key was not found")
    holder = session.get(User, key.user_id)
    assert holder is not None  # a key's user is deleted with its keys
    return key, holder


def _audit_key(
    session: Session, principal: Principal, action: AuditAction, prefix: str, holder: str
) -> None:
    principal.audit(session, action, target=prefix, detail={"user": holder})


def _past_expiry(path: str, hint: str = "") -> ValidationFailedError:
    message = "expires_at is in the past" + (f"; {hint}" if hint else "")
    return ValidationFailedError(message, [{"path": path, "message": message, "type": "past"}])


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
