"""Shared projects and their members over HTTP, the audit log, and who the caller is."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from store.identity import create_user
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of
from tests.conftest import tiny_capacity_spec


def _admin(secured: Settings) -> dict[str, str]:
    with sessions_of(secured).begin() as session:
        _, issued = create_user(session, "root", admin=True)
    return as_user(issued.key)


def test_a_shared_project_gets_members_who_submit_to_it(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    made = app_client.post("/v1/projects", json={"name": "grokking"}, headers=ada)
    assert made.status_code == 201, made.text
    project = made.json()
    assert project["role"] == "maintainer" and not project["personal"]
    assert [(m["user"], m["role"]) for m in project["members"]] == [("ada", "maintainer")]
    assert app_client.get(f"/v1/projects/{project['id']}", headers=bob).status_code == 404

    added = app_client.put(
        f"/v1/projects/{project['id']}/members/bob", json={"role": "member"}, headers=ada
    )
    assert added.status_code == 200 and added.json()["role"] == "member"
    mine = app_client.get("/v1/me", headers=bob).json()
    assert {(p["name"], p["role"]) for p in mine["projects"]} == {
        ("bob", "maintainer"),
        ("grokking", "member"),
    }
    submitted = app_client.post(
        "/v1/experiments",
        json={"spec": tiny_capacity_spec(), "project_id": project["id"]},
        headers=bob,
    )
    assert submitted.status_code == 201 and submitted.json()["project_id"] == project["id"]
    assert app_client.get("/v1/experiments", headers=ada).json()["total"] == 1  # bob's run

    # A member does not manage members; bob leaves on his own.
    promote = app_client.put(
        f"/v1/projects/{project['id']}/members/bob", json={"role": "maintainer"}, headers=bob
    )
    assert promote.status_code == 403 and "maintainer role" in promote.text
    left = app_client.delete(f"/v1/projects/{project['id']}/members/bob", headers=bob)
    assert left.status_code == 204
    assert app_client.get(f"/v1/projects/{project['id']}", headers=bob).status_code == 404


def test_a_project_keeps_a_maintainer_and_a_unique_readable_name(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada = as_user(keys["ada"]["key"])
    project = app_client.post("/v1/projects", json={"name": "capacity"}, headers=ada).json()
    members = f"/v1/projects/{project['id']}/members"
    demote = app_client.put(f"{members}/ada", json={"role": "viewer"}, headers=ada)
    assert demote.status_code == 409 and "needs a maintainer" in demote.text
    assert app_client.delete(f"{members}/ada", headers=ada).status_code == 409
    taken = app_client.post("/v1/projects", json={"name": "capacity"}, headers=ada)
    assert taken.status_code == 409
    personal = app_client.post("/v1/projects", json={"name": "bob"}, headers=ada)
    assert personal.status_code == 409  # bob's personal project has that name
    unreadable = app_client.post("/v1/projects", json={"name": "a/b"}, headers=ada)
    assert unreadable.status_code == 422
    assert unreadable.json()["error"]["details"][0]["path"] == "name"
    nobody = app_client.put(f"{members}/nobody", json={"role": "viewer"}, headers=ada)
    assert nobody.status_code == 404 and "nobody" in nobody.text
    bad_role = app_client.put(f"{members}/bob", json={"role": "owner"}, headers=ada)
    assert bad_role.status_code == 422 and bad_role.json()["error"]["details"][0]["path"] == "role"
    not_in = app_client.delete(f"{members}/bob", headers=ada)
    assert not_in.status_code == 404 and "not a member" in not_in.text


def test_the_audit_log_records_who_did_what_for_admins(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    run = app_client.post("/v1/experiments", json={"spec": tiny_capacity_spec()}, headers=ada)
    run_id = run.json()["id"]
    app_client.post(f"/v1/experiments/{run_id}/cancel", headers=ada)
    sweep = app_client.post("/v1/sweeps", json={"base": tiny_capacity_spec()}, headers=bob)
    key = app_client.post("/v1/keys", json={"label": "ci"}, headers=bob).json()
    app_client.post(f"/v1/keys/{key['id']}/revoke", headers=bob)
    project = app_client.post("/v1/projects", json={"name": "shared"}, headers=ada).json()
    app_client.put(
        f"/v1/projects/{project['id']}/members/bob", json={"role": "viewer"}, headers=ada
    )
    app_client.delete(f"/v1/projects/{project['id']}/members/bob", headers=ada)

    refused = app_client.get("/v1/audit", headers=ada)
    assert refused.status_code == 403 and "admin" in refused.text
    root = _admin(secured)
    events = app_client.get("/v1/audit", headers=root).json()["items"]
    assert [(e["actor"], e["action"], e["target"]) for e in reversed(events)] == [
        ("ada", "experiment.submitted", run_id),
        ("ada", "experiment.cancelled", run_id),
        ("bob", "sweep.submitted", sweep.json()["id"]),
        ("bob", "key.created", key["prefix"]),
        ("bob", "key.revoked", key["prefix"]),
        ("ada", "project.created", "shared"),
        ("ada", "member.role_set", "bob"),
        ("ada", "member.removed", "bob"),
    ]
    assert events[1]["detail"] == {"role": "viewer", "previous": None}
    assert key["key"] not in app_client.get("/v1/audit", headers=root).text

    only = app_client.get("/v1/audit", params={"action": "key.created"}, headers=root).json()
    assert [e["actor"] for e in only["items"]] == ["bob"]
    first = app_client.get("/v1/audit", params={"limit": 3}, headers=root).json()
    older = app_client.get(
        "/v1/audit", params={"limit": 10, "before": first["next_before"]}, headers=root
    ).json()
    assert len(first["items"]) == 3 and len(older["items"]) == 5 and older["next_before"] is None
    unknown = app_client.get("/v1/audit", params={"action": "dance"}, headers=root)
    assert unknown.status_code == 422


def test_the_rate_limit_answers_429_with_retry_after_per_key(
    database_url: str, secured: Settings, keys: dict[str, Any]
) -> None:
    from api.app import create_app

    limited = secured.model_copy(update={"rate_limit_per_minute": 3})
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    with TestClient(create_app(limited, run_reaper=False)) as client:
        answers = [client.get("/v1/kinds", headers=ada).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        refused = client.get("/v1/kinds", headers=ada)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 20  # one request every 20 s
        assert client.get("/v1/kinds", headers=bob).status_code == 200  # a key of its own
        assert client.get("/healthz").status_code == 200


def test_the_rate_limit_is_counted_in_redis_when_asked(
    secured: Settings, keys: dict[str, Any], redis_server_url: str
) -> None:
    """Two API processes share one count in Redis, as in production."""
    from api.app import create_app

    shared = secured.model_copy(
        update={
            "rate_limit_per_minute": 2,
            "rate_limit_backend": "redis",
            "rate_limit_redis_url": f"{redis_server_url}/12",
        }
    )
    ada = as_user(keys["ada"]["key"])
    with (
        TestClient(create_app(shared, run_reaper=False)) as first,
        TestClient(create_app(shared, run_reaper=False)) as second,
    ):
        assert first.get("/v1/kinds", headers=ada).status_code == 200
        assert second.get("/v1/kinds", headers=ada).status_code == 200
        assert first.get("/v1/kinds", headers=ada).status_code == 429
        assert second.get("/v1/kinds", headers=ada).status_code == 429


def test_without_authentication_everyone_is_the_local_user(client: TestClient) -> None:
    me = client.get("/v1/me").json()
    assert (me["name"], me["is_admin"], me["authenticated"]) == ("local", True, False)
    assert client.get("/v1/projects").json()["items"][0]["name"] == "local"
    run = client.post("/v1/experiments", json={"spec": tiny_capacity_spec()}).json()
    events = client.get("/v1/audit").json()["items"]
    assert [(e["actor"], e["action"], e["target"]) for e in events] == [
        ("local", "experiment.submitted", run["id"])
    ]


def test_a_personal_projects_owner_stays_its_maintainer(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    personal = app_client.get("/v1/me", headers=ada).json()["personal_project"]
    members = f"/v1/projects/{personal}/members"
    assert app_client.put(f"{members}/bob", json={"role": "maintainer"}, headers=ada).is_success
    demote = app_client.put(f"{members}/ada", json={"role": "viewer"}, headers=bob)
    assert demote.status_code == 409 and "owner" in demote.text
    assert app_client.delete(f"{members}/ada", headers=bob).status_code == 409
    assert app_client.delete(f"{members}/ada", headers=ada).status_code == 409  # nor leave
    assert app_client.delete(f"{members}/bob", headers=ada).status_code == 204


def test_a_viewer_learns_no_user_names_and_odd_input_is_a_422(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    project = app_client.post("/v1/projects", json={"name": "names"}, headers=ada).json()["id"]
    members = f"/v1/projects/{project}/members"
    app_client.put(f"{members}/bob", json={"role": "viewer"}, headers=ada)
    for name in ("ada", "nosuchuser"):  # the same answer whether the user exists or not
        assert app_client.delete(f"{members}/{name}", headers=bob).status_code == 403
    root = _admin(secured)
    odd = [
        app_client.put(f"{members}/a%00b", json={"role": "viewer"}, headers=ada),
        app_client.get("/v1/audit", params={"actor": "a\x00b"}, headers=root),
        app_client.get("/v1/audit", params={"before": 2**63}, headers=root),
        app_client.get("/v1/audit", params={"since": "9999-12-31T23:59:59-12:00"}, headers=root),
        app_client.get("/v1/audit", params={"since": "1700000000"}, headers=root),
        app_client.get("/v1/keys", params={"user": "a\x00b"}, headers=root),
        app_client.post("/v1/keys", json={"label": "a\x00b"}, headers=ada),
        app_client.post("/v1/keys", json={"expires_at": "0001-01-01T00:00:00+01:00"}, headers=ada),
    ]
    assert [answer.status_code for answer in odd] == [422] * len(odd), [a.text for a in odd]
