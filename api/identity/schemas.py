"""Request and response bodies of the identity routes: keys, projects, members, audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from store.identity import USER_NAME
from store.models import ApiKey, AuditEvent, Project, Role, User

NAME_PATTERN = f"^{USER_NAME.pattern}$"


def _iso_text_only(value: Any) -> Any:
    """Refuse a number where a date is due: pydantic would read it as a Unix time, which
    the OpenAPI document (`format: date-time`) does not promise."""
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("an ISO 8601 date and time with a time zone, e.g. 2027-01-31T12:00:00Z")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _in_utc(moment: datetime) -> datetime:
    """The moment in UTC, or a clear error for one UTC cannot hold (9999-12-31T23:00-12:00)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("a date and time between the years 1 and 9999 in UTC") from None


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text_only), AfterValidator(_in_utc)]
"""A date and time with a time zone, given as ISO 8601 text; held in UTC."""

UserName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64, description="A user's name.")]
"""A user's name in a path (`.../members/{user_name}`)."""
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


class KeyOut(BaseModel):
    """A key as listed: its public prefix, never the key."""

    id: uuid.UUID
    prefix: str = Field(description="The key's public start, `mlk_<8 hex>`; shown in listings.")
    label: str | None
    user: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool = Field(description="Neither revoked nor expired: requests with it are served.")

    @classmethod
    def of(cls, key: ApiKey, user_name: str, now: datetime) -> KeyOut:
        expired = key.expires_at is not None and key.expires_at <= now
        return cls(
            id=key.id,
            prefix=key.prefix,
            label=key.label,
            user=user_name,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            active=key.revoked_at is None and not expired,
        )


class KeyList(BaseModel):
    items: list[KeyOut]


class KeyCreate(BaseModel):
    """A new key for yourself, or (admins) for the user named."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(
        None, max_length=200, pattern=NO_NUL, description="What the key is for."
    )
    expires_at: IsoDatetime | None = Field(
        None, description="When it stops working (with a time zone); none = never."
    )
    user: str | None = Field(
        None, pattern=NAME_PATTERN, description="Admins only: the user the key is for."
    )


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, never stored or shown again.")


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: IsoDatetime | None = Field(
        description="When the key stops working (with a time zone); null = never."
    )


class ProjectRole(BaseModel):
    id: uuid.UUID
    name: str
    personal: bool = Field(description="A user's personal project (where its runs go by default).")
    role: Role | None = Field(description="The caller's role in it.")

    @classmethod
    def of(cls, project: Project, role: Role | None) -> ProjectRole:
        return cls(
            id=project.id, name=project.name, personal=project.personal_of is not None, role=role
        )


class MeOut(BaseModel):
    """The user a request acts as."""

    id: uuid.UUID
    name: str
    is_admin: bool
    authenticated: bool = Field(
        description="False on a server without authentication: everyone is the local user."
    )
    personal_project: uuid.UUID
    projects: list[ProjectRole]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique; letters, digits, `_.-`.")


class MemberOut(BaseModel):
    user: str
    user_id: uuid.UUID
    role: Role

    @classmethod
    def of(cls, user: User, role: Role) -> MemberOut:
        return cls(user=user.name, user_id=user.id, role=role)


class ProjectOut(ProjectRole):
    created_at: datetime
    members: list[MemberOut]


class ProjectList(BaseModel):
    items: list[ProjectRole]


class MemberSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="The user's name (`local` without authentication).")
    actor_id: uuid.UUID | None
    action: str = Field(description="E.g. `experiment.submitted`, `key.revoked`.")
    project_id: uuid.UUID | None
    target: str | None = Field(description="What was acted on: a run id, a key prefix, a user.")
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            at=event.at,
            actor=event.actor_name,
            actor_id=event.actor_id,
            action=event.action,
            project_id=event.project_id,
            target=event.target,
            detail=event.detail,
        )


class AuditList(BaseModel):
    items: list[AuditEventOut]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page."
    )
