"""API keys over HTTP: listed by prefix, created (shown once), given an expiry, revoked;
and no key in plaintext anywhere in the database or the logs."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from store.identity import create_user
from store.models import ApiKey, Base
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of


def test_a_created_key_is_shown_once_then_listed_by_its_prefix(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada = as_user(keys["ada"]["key"])
    made = app_client.post("/v1/keys", json={"label": "laptop"}, headers=ada)
    assert made.status_code == 201, made.text
    new_key = made.json()["key"]
    assert new_key.startswith(made.json()["prefix"] + "_") and made.json()["active"]
    assert app_client.get("/v1/me", headers=as_user(new_key)).json()["name"] == "ada"
    listed = app_client.get("/v1/keys", headers=ada)
    assert [k["label"] for k in listed.json()["items"]] == ["laptop", "first key"]
    assert new_key not in listed.text and "key" not in listed.json()["items"][0]


def test_a_revoked_key_fails_on_its_next_request(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada = as_user(keys["ada"]["key"])
    spare = app_client.post("/v1/keys", json={"label": "spare"}, headers=ada).json()
    assert app_client.get("/v1/kinds", headers=as_user(spare["key"])).status_code == 200
    revoked = app_client.post(f"/v1/keys/{spare['id']}/revoke", headers=as_user(spare["key"]))
    assert revoked.status_code == 200 and not revoked.json()["active"]
    assert revoked.json()["revoked_at"] is not None
    after = app_client.get("/v1/kinds", headers=as_user(spare["key"]))
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]
    again = app_client.post(f"/v1/keys/{spare['id']}/revoke", headers=ada)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert app_client.get("/v1/kinds", headers=ada).status_code == 200  # her other key


def test_a_key_stops_working_when_it_expires(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada = as_user(keys["ada"]["key"])
    later = datetime.now(UTC) + timedelta(days=7)
    made = app_client.post("/v1/keys", json={"expires_at": later.isoformat()}, headers=ada).json()
    assert datetime.fromisoformat(made["expires_at"]) == later
    assert app_client.get("/v1/kinds", headers=as_user(made["key"])).status_code == 200
    # A week passes (moved in the database: no test waits for a clock).
    with sessions_of(secured).begin() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(made["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert app_client.get("/v1/kinds", headers=as_user(made["key"])).status_code == 401
    listed = {k["id"]: k for k in app_client.get("/v1/keys", headers=ada).json()["items"]}
    assert listed[made["id"]]["active"] is False
    # Setting the expiry again brings it back; null means never.
    cleared = app_client.patch(f"/v1/keys/{made['id']}", json={"expires_at": None}, headers=ada)
    assert cleared.status_code == 200 and cleared.json()["active"], cleared.text
    assert app_client.get("/v1/kinds", headers=as_user(made["key"])).status_code == 200


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),  # the past
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),  # no time zone
        ({"expires_at": None, "colour": "red"}, "colour"),
    ],
)
def test_a_bad_expiry_is_a_422_naming_the_field(
    app_client: TestClient, keys: dict[str, Any], body: dict[str, Any], path: str
) -> None:
    response = app_client.patch(
        f"/v1/keys/{keys['ada']['key_id']}", json=body, headers=as_user(keys["ada"]["key"])
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["path"] == path


def test_another_users_keys_are_an_admins_business_only(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    assert app_client.get("/v1/keys", params={"user": "ada"}, headers=bob).status_code == 403
    with sessions_of(secured).begin() as session:
        _, issued = create_user(session, "root", admin=True)
    root = as_user(issued.key)
    bobs = app_client.get("/v1/keys", params={"user": "bob"}, headers=root).json()["items"]
    assert [k["id"] for k in bobs] == [str(keys["bob"]["key_id"])]
    made = app_client.post("/v1/keys", json={"user": "bob", "label": "from root"}, headers=root)
    assert made.status_code == 201 and made.json()["user"] == "bob"
    assert app_client.get("/v1/me", headers=as_user(made.json()["key"])).json()["name"] == "bob"
    unknown = app_client.post("/v1/keys", json={"user": "nobody"}, headers=root)
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["path"] == "user"
    assert app_client.post(f"/v1/keys/{keys['bob']['key_id']}/revoke", headers=root).is_success
    assert app_client.get("/v1/me", headers=bob).status_code == 401
    assert app_client.get("/v1/me", headers=ada).status_code == 200


def test_no_key_is_stored_or_logged_in_plaintext(
    app_client: TestClient,
    keys: dict[str, Any],
    secured: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    ada = as_user(keys["ada"]["key"])
    shown = [keys["ada"]["key"], keys["bob"]["key"]]
    made = app_client.post("/v1/keys", json={"label": "secret-test"}, headers=ada).json()
    shown.append(made["key"])
    app_client.get("/v1/experiments", headers=as_user(made["key"]))
    app_client.post(f"/v1/keys/{made['id']}/revoke", headers=ada)
    refused = app_client.get("/v1/experiments", headers=as_user(made["key"]))  # revoked
    assert refused.status_code == 401 and made["key"] not in refused.text
    forged = made["key"][:-4] + "AAAA"  # its prefix, a wrong secret
    assert app_client.get("/v1/experiments", headers=as_user(forged)).status_code == 401

    # mlk_<prefix>_<secret>: the secret is base64url, which may hold "_" itself.
    secrets = [key.split("_", 2)[2] for key in [*shown, forged]]
    assert all(len(secret) == 43 for secret in secrets)
    stored = _every_stored_value(secured)
    for secret in secrets:
        assert secret not in stored, "a key's secret is in the database"
        assert secret not in caplog.text, "a key's secret is in the logs"
    assert made["prefix"] in stored  # the dump does read the keys' rows


def _every_stored_value(settings: Settings) -> str:
    """Every row of every table, as text."""
    dumped = []
    with sessions_of(settings)() as session:
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(table)).all()
            dumped.extend(repr(tuple(row)) for row in rows)
    return "\n".join(dumped)
