"""Users, keys and projects in the database: keys stored only as digests, found by their
prefix, refused once revoked or expired."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from store.db import migrate
from store.identity import (
    IdentityError,
    authenticate,
    create_user,
    issue_key,
    key_digest,
    personal_project,
    revoke_key,
    roles_of,
)
from store.models import LOCAL_PROJECT_ID, LOCAL_USER_ID, ApiKey, Role, User, utcnow


@pytest.fixture
def db(database_url: str, sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    migrate(database_url)
    return sessions


def test_a_new_user_gets_a_personal_project_and_a_key_kept_only_as_its_digest(
    db: sessionmaker[Session],
) -> None:
    with db.begin() as session:
        user, issued = create_user(session, "ada")
        user_id = user.id
    with db() as session:
        assert authenticate(session, issued.key).id == user_id  # type: ignore[union-attr]
        assert roles_of(session, user_id) == {personal_project(session, user_id): Role.maintainer}
        stored = session.scalars(select(ApiKey)).all()
        assert [row.digest for row in stored] == [key_digest(issued.key)]
        # The key's secret appears in no column of any table.
        secret = issued.key.rsplit("_", 1)[1]
        for table in ("api_keys", "users", "projects"):
            for row in session.execute(text(f"SELECT * FROM {table}")):
                assert all(secret not in str(value) for value in row)


def test_a_wrong_revoked_or_expired_key_authenticates_no_one(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        user, issued = create_user(session, "bea")
        expiring = issue_key(session, user.id, expires_at=utcnow() + timedelta(hours=1))
    with db() as session:
        forged = issued.key[:-4] + "AAAA"
        assert authenticate(session, forged) is None
        assert authenticate(session, "mlk_deadbeef_nothing") is None
        assert authenticate(session, "not a key") is None
        assert authenticate(session, expiring.key) is not None
        assert authenticate(session, expiring.key, now=utcnow() + timedelta(hours=2)) is None
    with db.begin() as session:
        assert revoke_key(session, issued.id)
    with db() as session:
        assert authenticate(session, issued.key) is None


def test_names_are_unique_and_the_local_user_owns_the_local_project(
    db: sessionmaker[Session],
) -> None:
    with db.begin() as session:
        create_user(session, "cy")
    with db.begin() as session, pytest.raises(IdentityError, match="exists"):
        create_user(session, "cy")
    with db() as session:
        local = session.get(User, LOCAL_USER_ID)
        assert local is not None and local.name == "local" and local.is_admin
        assert roles_of(session, LOCAL_USER_ID) == {LOCAL_PROJECT_ID: Role.maintainer}
