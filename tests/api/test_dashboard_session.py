"""The dashboard's login: an API key exchanged for an HttpOnly, SameSite session cookie,
CSRF-checked on every change, ended by logout or by revoking the key it came from."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from api.auth import SESSION_COOKIE
from store.models import ApiKey, utcnow
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of
from tests.conftest import tiny_capacity_spec


def log_in(client: TestClient, key: str) -> dict[str, Any]:
    response = client.post("/v1/session", json={"api_key": key})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_key_opens_an_http_only_same_site_session(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    response = app_client.post("/v1/session", json={"api_key": keys["ada"]["key"]})
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "ada" and body["authenticated"] is True
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert keys["ada"]["key"] not in cookie  # a key of its own, not the one typed in
    # The cookie alone now reads as ada, and /v1/session repeats its CSRF token.
    assert app_client.get("/v1/me").json()["name"] == "ada"
    assert app_client.get("/v1/session").json()["csrf_token"] == body["csrf_token"]


def test_a_change_through_the_cookie_needs_the_csrf_token(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    token = log_in(app_client, keys["ada"]["key"])["csrf_token"]
    body = {"spec": tiny_capacity_spec()}
    refused = app_client.post("/v1/experiments", json=body)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]
    wrong = app_client.post("/v1/experiments", json=body, headers={"x-csrf-token": "0" * 64})
    assert wrong.status_code == 403
    accepted = app_client.post("/v1/experiments", json=body, headers={"x-csrf-token": token})
    assert accepted.status_code == 201
    # An API key in the header needs no token (scripts are not browsers).
    app_client.cookies.clear()
    assert (
        app_client.post(
            "/v1/experiments", json=body, headers=as_user(keys["ada"]["key"])
        ).status_code
        == 201
    )


def test_a_bad_key_opens_no_session(app_client: TestClient, keys: dict[str, Any]) -> None:
    response = app_client.post("/v1/session", json={"api_key": "mlk_00000000_nope"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    missing = app_client.post("/v1/session", json={})
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["path"] == "api_key"
    assert app_client.get("/v1/session").status_code == 401


def test_logging_out_revokes_the_session(app_client: TestClient, keys: dict[str, Any]) -> None:
    log_in(app_client, keys["ada"]["key"])
    session_key = app_client.cookies[SESSION_COOKIE]
    assert app_client.delete("/v1/session").status_code == 204
    assert SESSION_COOKIE not in app_client.cookies
    # The session key itself is dead, not only forgotten by this browser.
    assert app_client.get("/v1/me", headers=as_user(session_key)).status_code == 401
    # The key typed in still works.
    assert app_client.get("/v1/me", headers=as_user(keys["ada"]["key"])).status_code == 200


def test_revoking_the_key_ends_the_sessions_opened_with_it(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    log_in(app_client, keys["bob"]["key"])
    assert app_client.get("/v1/me").status_code == 200
    revoked = app_client.post(
        f"/v1/keys/{keys['bob']['key_id']}/revoke", headers=as_user(keys["bob"]["key"])
    )
    assert revoked.status_code == 200
    assert app_client.get("/v1/me").status_code == 401


def test_a_session_key_cannot_open_another_session(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    """Else a stolen cookie could be renewed for ever, past its expiry."""
    log_in(app_client, keys["ada"]["key"])
    session_key = app_client.cookies[SESSION_COOKIE]
    app_client.cookies.clear()
    assert app_client.post("/v1/session", json={"api_key": session_key}).status_code == 401


def test_a_session_sees_what_its_user_sees_and_no_more(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    created = app_client.post(
        "/v1/experiments", json={"spec": tiny_capacity_spec()}, headers=as_user(keys["ada"]["key"])
    )
    run_id = created.json()["id"]
    log_in(app_client, keys["bob"]["key"])
    assert app_client.get(f"/v1/experiments/{run_id}").status_code == 404
    assert app_client.get("/v1/experiments").json()["total"] == 0
    log_in(app_client, keys["ada"]["key"])
    assert app_client.get(f"/v1/experiments/{run_id}").status_code == 200


def test_without_authentication_no_login_is_needed(client: TestClient) -> None:
    opened = client.post("/v1/session", json={"api_key": "anything"})
    assert opened.status_code == 200
    assert opened.json() == {
        "name": "local",
        "is_admin": True,
        "authenticated": False,
        "csrf_token": None,
        "expires_at": None,
    }
    assert "set-cookie" not in opened.headers
    assert client.get("/v1/session").json()["authenticated"] is False


def test_an_authorization_header_wins_over_the_cookie(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    """A script's key is what it says it is; a page cannot set that header cross-site, so
    such a request needs no CSRF token."""
    log_in(app_client, keys["ada"]["key"])
    bob = as_user(keys["bob"]["key"])
    assert app_client.get("/v1/me", headers=bob).json()["name"] == "bob"
    created = app_client.post("/v1/experiments", json={"spec": tiny_capacity_spec()}, headers=bob)
    assert created.status_code == 201
    # The token is the cookie's, and only a request made with the cookie alone gets it.
    assert app_client.get("/v1/session", headers=bob).json()["csrf_token"] is None


def test_every_kind_of_change_through_the_cookie_needs_the_token(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    token = log_in(app_client, keys["ada"]["key"])["csrf_token"]
    ada_project = app_client.get("/v1/me").json()["personal_project"]
    changes = [
        ("PATCH", f"/v1/keys/{keys['ada']['key_id']}", {"expires_at": None}),
        ("DELETE", f"/v1/projects/{ada_project}/members/bob", None),
        ("PUT", f"/v1/projects/{ada_project}/members/bob", {"role": "viewer"}),
    ]
    for method, path, body in changes:
        refused = app_client.request(method, path, json=body)
        assert refused.status_code == 403, (method, path)
        assert refused.json()["error"]["code"] == "csrf_token_invalid"
    # A header the server cannot read as ASCII is a wrong token too, not a crash.
    odd = app_client.post(
        "/v1/experiments",
        json={"spec": tiny_capacity_spec()},
        headers={"x-csrf-token": "é".encode("latin-1")},  # type: ignore[dict-item]
    )
    assert odd.status_code == 403
    put = app_client.put(
        f"/v1/projects/{ada_project}/members/bob",
        json={"role": "viewer"},
        headers={"x-csrf-token": token},
    )
    assert put.status_code == 200


def test_a_session_ends_when_the_key_it_came_from_expires(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    log_in(app_client, keys["ada"]["key"])
    assert app_client.get("/v1/me").status_code == 200
    with sessions_of(secured).begin() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == keys["ada"]["key_id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert app_client.get("/v1/me").status_code == 401


def test_a_session_cannot_make_keys_or_outlive_its_expiry(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    """Else a stolen cookie could be turned into lasting access."""
    token = log_in(app_client, keys["ada"]["key"])["csrf_token"]
    csrf = {"x-csrf-token": token}
    made = app_client.post("/v1/keys", json={"label": "mine"}, headers=csrf)
    assert made.status_code == 403
    assert "not from a dashboard session" in made.json()["error"]["message"]
    # Nor extend a key, its own or the one it came from.
    session_key = app_client.cookies[SESSION_COOKIE]
    listed = app_client.get("/v1/keys", headers=as_user(keys["ada"]["key"])).json()["items"]
    (session_row,) = [k for k in listed if session_key.startswith(k["prefix"])]
    assert session_row["label"] == "dashboard session" and session_row["expires_at"]
    for key_id in (session_row["id"], keys["ada"]["key_id"]):
        forever = app_client.patch(f"/v1/keys/{key_id}", json={"expires_at": None}, headers=csrf)
        assert forever.status_code == 403, key_id
    # With the key itself (not the session), a session key's expiry is still not to set.
    by_key = app_client.patch(
        f"/v1/keys/{session_row['id']}",
        json={"expires_at": None},
        headers=as_user(keys["ada"]["key"]),
    )
    assert by_key.status_code == 422
    assert by_key.json()["error"]["details"][0]["path"] == "expires_at"
