"""Users, API keys, projects and roles: who a request is, and which projects it may read
or act in.

A key is `mlk_<prefix>_<secret>`: 8 hex characters of public prefix, which finds the
key's row and is shown in listings, and 32 random bytes of secret. Only the SHA-256 of
the whole key is stored; a presented key is hashed and compared with
`hmac.compare_digest`, so neither the database nor a timing difference gives it away.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store import audit
from store.audit import AuditAction
from store.models import (
    LOCAL_PROJECT_ID,
    LOCAL_USER_ID,
    ApiKey,
    Project,
    ProjectMember,
    Role,
    User,
    utcnow,
)

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A user's or project's name: it appears in URLs (`/v1/projects/ID/members/NAME`)."""
KEY_SCHEME = "mlk"
PREFIX_HEX_CHARS = 8
SECRET_BYTES = 32


class IdentityError(ValueError):
    """A user, project or key operation that cannot be done as asked (a taken name, say)."""


@dataclass(frozen=True)
class IssuedKey:
    """A key as issued: `key` is shown to its holder once and never stored."""

    id: uuid.UUID
    key: str
    prefix: str


def key_digest(key: str) -> str:
    """The SHA-256 hex of a key: all that is stored of it."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else None.

    >>> key_prefix("mlk_0a1b2c3d_" + "x" * 43)
    'mlk_0a1b2c3d'
    >>> key_prefix("Bearer something") is None
    True
    """
    scheme, _, rest = key.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != KEY_SCHEME or len(prefix) != PREFIX_HEX_CHARS or not secret:
        return None
    return f"{scheme}_{prefix}"


def issue_key(
    session: Session,
    user_id: uuid.UUID,
    label: str | None = None,
    expires_at: datetime | None = None,
    session_of: uuid.UUID | None = None,
) -> IssuedKey:
    """A new key for the user; its digest is stored, the key itself returned once.
    `session_of`: the key a dashboard session was exchanged for (see `revoke_key`)."""
    prefix = _unused_prefix(session)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    key = f"{prefix}_{secret}"
    row = ApiKey(
        id=uuid.uuid4(),
        user_id=user_id,
        prefix=prefix,
        digest=key_digest(key),
        label=label,
        expires_at=expires_at,
        session_of=session_of,
    )
    session.add(row)
    session.flush()
    return IssuedKey(row.id, key, prefix)


def _unused_prefix(session: Session) -> str:
    """A random public prefix no key has yet (32 bits: a clash is rare, not impossible)."""
    while True:
        prefix = f"{KEY_SCHEME}_{secrets.token_hex(PREFIX_HEX_CHARS // 2)}"
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is None:
            return prefix


def create_user(session: Session, name: str, admin: bool = False) -> tuple[User, IssuedKey]:
    """A user with a personal project of the same name (its maintainer) and a first key."""
    check_name(name, "user")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise IdentityError(f"a user named {name!r} exists already")
    if session.scalar(select(Project).where(Project.name == name)) is not None:
        raise IdentityError(f"a project named {name!r} exists; choose another user name")
    user = User(id=uuid.uuid4(), name=name, is_admin=admin)
    session.add(user)
    session.flush()
    project = Project(id=uuid.uuid4(), name=name, personal_of=user.id)
    session.add(project)
    session.flush()
    session.add(ProjectMember(project_id=project.id, user_id=user.id, role=Role.maintainer))
    return user, issue_key(session, user.id, label="first key")


def authenticate(session: Session, key: str, now: datetime | None = None) -> User | None:
    """The user a presented key belongs to, if the key is known, unrevoked and unexpired."""
    row = valid_key(session, key, now)
    return None if row is None else session.get(User, row.user_id)


def valid_key(session: Session, key: str, now: datetime | None = None) -> ApiKey | None:
    """The stored row of a presented key, if the key is known, unrevoked and unexpired."""
    prefix = key_prefix(key)
    if prefix is None:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or not hmac.compare_digest(row.digest, key_digest(key)):
        return None
    now = now or utcnow()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return row


# The key a dashboard session's key was exchanged for: the session holds only while it
# does. Made once: a fresh alias per call cost the check a statement compile each time.
_PARENT_KEYS = ApiKey.__table__.alias("parent")


@dataclass(frozen=True)
class KeyHolder:
    """Who presented a valid key, with the user's role in each of its projects."""

    key_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    is_admin: bool
    personal_project: uuid.UUID
    roles: dict[uuid.UUID, Role]
    is_session: bool = False  # a dashboard session's key (`issue_key(session_of=…)`)


def key_holder(
    session: Session | Connection, key: str, now: datetime | None = None
) -> KeyHolder | None:
    """The holder of a presented key, if the key is known, unrevoked and unexpired.

    One query for the key, its user and the user's memberships, over the tables rather
    than the mapped classes: this runs on every authenticated request, and the ORM's
    statement handling cost more CPU than the query itself (`bench/api_load.py --arms
    auth` measured what it adds to a submission).
    """
    prefix = key_prefix(key)
    if prefix is None:
        return None
    keys, users, members, projects = (
        ApiKey.__table__.c,
        User.__table__.c,
        ProjectMember.__table__.c,
        Project.__table__.c,
    )
    parent_table = _PARENT_KEYS
    parent = parent_table.c
    rows = session.execute(
        select(
            keys.id,
            keys.digest,
            keys.revoked_at,
            keys.expires_at,
            users.id,
            users.name,
            users.is_admin,
            members.project_id,
            members.role,
            projects.personal_of,
            keys.session_of,
            parent.revoked_at,
            parent.expires_at,
        )
        .select_from(
            ApiKey.__table__.join(User.__table__, users.id == keys.user_id)
            .outerjoin(parent_table, parent.id == keys.session_of)
            .outerjoin(ProjectMember.__table__, members.user_id == users.id)
            .outerjoin(Project.__table__, projects.id == members.project_id)
        )
        .where(keys.prefix == prefix)
    ).all()
    if not rows or not hmac.compare_digest(rows[0][1], key_digest(key)):
        return None
    key_id, _, revoked_at, expires_at, user_id, name, is_admin = rows[0][:7]
    session_of, parent_revoked_at, parent_expires_at = rows[0][10:13]
    now = now or utcnow()
    if not _holds(revoked_at, expires_at, now) or (
        session_of is not None and not _holds(parent_revoked_at, parent_expires_at, now)
    ):
        return None
    roles = {row[7]: Role(row[8]) for row in rows if row[7] is not None}
    personal = [row[7] for row in rows if row[9] == user_id]
    if not personal:
        raise IdentityError(f"user {name} has no personal project")
    return KeyHolder(key_id, user_id, name, is_admin, personal[0], roles, session_of is not None)


def _holds(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None and (expires_at is None or expires_at > now)


def revoke_key(session: Session, key_id: uuid.UUID) -> bool:
    """Revoke a key and the dashboard sessions opened with it (their next requests fail);
    False if there is no such key."""
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    now = utcnow()
    if row.revoked_at is None:
        row.revoked_at = now
    session.execute(
        update(ApiKey)
        .where(ApiKey.session_of == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return True


def roles_of(session: Session, user_id: uuid.UUID) -> dict[uuid.UUID, Role]:
    """The user's role in each project it belongs to."""
    rows = session.execute(
        select(ProjectMember.project_id, ProjectMember.role).where(ProjectMember.user_id == user_id)
    )
    return {project_id: Role(role) for project_id, role in rows}


def personal_project(session: Session, user_id: uuid.UUID) -> uuid.UUID:
    """The id of the user's personal project."""
    project_id = session.scalar(select(Project.id).where(Project.personal_of == user_id))
    if project_id is None:
        raise IdentityError(f"user {user_id} has no personal project")
    return project_id


def ensure_local_identity(session: Session) -> None:
    """The built-in `local` user and project, the user a maintainer of it (the migration
    makes them; this puts them back in a database emptied since, as tests do)."""
    if session.get(User, LOCAL_USER_ID) is None:
        session.add(User(id=LOCAL_USER_ID, name="local", is_admin=True))
        session.flush()
    if session.get(Project, LOCAL_PROJECT_ID) is None:
        session.add(Project(id=LOCAL_PROJECT_ID, name="local", personal_of=LOCAL_USER_ID))
        session.flush()
    if session.get(ProjectMember, (LOCAL_PROJECT_ID, LOCAL_USER_ID)) is None:
        session.add(
            ProjectMember(project_id=LOCAL_PROJECT_ID, user_id=LOCAL_USER_ID, role=Role.maintainer)
        )


def check_name(name: str, what: str) -> None:
    """Refuse a name that would not read well in a URL or a listing."""
    if not USER_NAME.fullmatch(name):
        raise IdentityError(
            f"a {what} name is 1 to 64 letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit; {name!r} is not"
        )


def record_user_created(session: Session, user: User, key_prefix: str) -> None:
    """Audit a user made on the server machine (`memlab users add`), by the OS user."""
    operator = operator_name()
    project_id = personal_project(session, user.id)
    detail = {"admin": user.is_admin, "first_key": key_prefix}
    audit.record(
        session,
        None,
        operator,
        AuditAction.user_created,
        project_id=project_id,
        target=user.name,
        detail=detail,
    )


def operator_name() -> str:
    """Who acts from the server machine's shell, as the audit log names them."""
    return f"cli:{_os_user()}"[:64]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor the password file
        return "unknown"


def user_named(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def keys_of(session: Session, user_id: uuid.UUID) -> Sequence[ApiKey]:
    """The user's keys, newest first, revoked and expired ones included."""
    statement = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at.desc())
    return session.scalars(statement).all()


def create_project(session: Session, name: str, creator_id: uuid.UUID) -> Project:
    """A shared project; its creator is its first maintainer."""
    check_name(name, "project")
    if session.scalar(select(Project).where(Project.name == name)) is not None:
        raise IdentityError(f"a project named {name!r} exists already")
    project = Project(id=uuid.uuid4(), name=name)
    session.add(project)
    session.flush()
    session.add(ProjectMember(project_id=project.id, user_id=creator_id, role=Role.maintainer))
    return project


def members_of(session: Session, project_id: uuid.UUID) -> list[tuple[User, Role]]:
    """The project's members with their roles, by name."""
    rows = session.execute(
        select(User, ProjectMember.role)
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project_id)
        .order_by(User.name)
    )
    return [(user, Role(role)) for user, role in rows]


def set_role(
    session: Session, project_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Role | None:
    """Give the user `role` in the project (adding it as a member if it was not one);
    returns the role it had. A project keeps at least one maintainer."""
    membership = session.get(ProjectMember, (project_id, user_id))
    previous = None if membership is None else Role(membership.role)
    if previous is Role.maintainer and role is not Role.maintainer:
        _keep_owner_and_a_maintainer(session, project_id, user_id)
    if membership is None:
        session.add(ProjectMember(project_id=project_id, user_id=user_id, role=role))
    else:
        membership.role = role
    session.flush()
    return previous


def remove_member(session: Session, project_id: uuid.UUID, user_id: uuid.UUID) -> Role | None:
    """Take the user out of the project; returns the role it had (None: not a member).
    A project keeps at least one maintainer."""
    membership = session.get(ProjectMember, (project_id, user_id))
    if membership is None:
        return None
    previous = Role(membership.role)
    if previous is Role.maintainer:
        _keep_owner_and_a_maintainer(session, project_id, user_id)
    session.delete(membership)
    session.flush()
    return previous


def _keep_owner_and_a_maintainer(
    session: Session, project_id: uuid.UUID, leaving: uuid.UUID
) -> None:
    """Refuse to take maintainer away from a personal project's owner (its runs go there
    by default), or from a project's last maintainer (no one could manage it then)."""
    project = session.get(Project, project_id)
    if project is not None and project.personal_of == leaving:
        raise IdentityError("a personal project's owner stays its maintainer")
    # Locked, so two maintainers demoting each other at once cannot both succeed.
    maintainers = session.scalars(
        select(ProjectMember.user_id)
        .where(ProjectMember.project_id == project_id, ProjectMember.role == Role.maintainer)
        .with_for_update()
    ).all()
    if len(maintainers) <= 1:
        raise IdentityError("a project needs a maintainer: make another member maintainer first")
