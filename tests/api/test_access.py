"""Who may see and do what, with authentication on: keys, 401s, projects and roles.

The expectations here are written from the issue's rules, not from the code's policy:
a run in a project you are not in answers 404 on every route that names it (as an
unknown id would), and an action your role does not allow answers 403.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from store.identity import create_user, revoke_key
from store.models import ProjectMember, Role
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of
from tests.conftest import tiny_capacity_spec

HEALTH_PATHS = ("/healthz", "/readyz")


def test_without_a_valid_key_every_route_but_health_is_a_401(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    for path in ("/v1/experiments", "/v1/kinds", "/v1/probe-kinds", "/v1/sweeps", "/v1/probes"):
        assert app_client.get(path).status_code == 401, path
        assert app_client.get(path, headers=as_user("mlk_00000000_nope")).status_code == 401
    for path in HEALTH_PATHS:
        assert app_client.get(path).status_code != 401, path
    assert app_client.get("/v1/kinds", headers=as_user(keys["ada"]["key"])).status_code == 200
    with sessions_of(secured).begin() as session:
        revoke_key(session, keys["ada"]["key_id"])
    response = app_client.get("/v1/kinds", headers=as_user(keys["ada"]["key"]))
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


def _submit(client: TestClient, key: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/experiments", json={"spec": tiny_capacity_spec(), **body}, headers=as_user(key)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _sweep(client: TestClient, key: str) -> dict[str, Any]:
    body = {"base": tiny_capacity_spec(), "seeds": 2, "name": "ada's sweep"}
    response = client.post("/v1/sweeps", json=body, headers=as_user(key))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _routes_naming_a_resource(client: TestClient) -> list[tuple[str, str]]:
    """(method, path template) of every route in the OpenAPI document with an id in it."""
    document = client.app.openapi()  # type: ignore[attr-defined]
    routes = []
    for path, operations in document["paths"].items():
        if re.search(r"\{(experiment_id|probe_id|sweep_id)\}", path):
            routes.extend((method.upper(), path) for method in operations)
    return routes


def test_a_second_user_cannot_see_or_touch_the_first_users_runs_on_any_route(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada, bob = keys["ada"]["key"], keys["bob"]["key"]
    experiment = _submit(app_client, ada)
    sweep = _sweep(app_client, ada)
    ids = {"experiment_id": experiment["id"], "sweep_id": sweep["id"], "path": "model.bin"}
    routes = _routes_naming_a_resource(app_client)
    assert len(routes) >= 10, routes  # the document lists the per-resource routes
    for method, template in routes:
        if "{probe_id}" in template:
            continue  # no probe exists yet; probes are checked below
        path = template.format(**ids)
        answer = app_client.request(method, path, headers=as_user(bob))
        assert answer.status_code == 404, (method, path, answer.status_code)
        if path.endswith("/events"):
            continue  # the owner's stream stays open while the run is queued
        if "{path}" in template:
            continue  # no file stored yet: the owner's download is a 404 too
        owner = app_client.request(method, path, headers=as_user(ada))
        assert owner.status_code != 404, (method, path)
    # Listings, filters, exports and comparisons show bob nothing of ada's.
    listed = app_client.get("/v1/experiments", headers=as_user(bob)).json()
    assert listed["total"] == 0
    where = app_client.get(
        "/v1/experiments", params={"where": f'id = "{experiment["id"]}"'}, headers=as_user(bob)
    ).json()
    assert where["total"] == 0
    assert app_client.get("/v1/sweeps", headers=as_user(bob)).json()["total"] == 0
    exported = app_client.get(
        "/v1/experiments", params={"format": "csv"}, headers=as_user(bob)
    ).text
    assert experiment["id"] not in exported
    compare = app_client.get(
        "/v1/experiments/compare", params={"ids": experiment["id"]}, headers=as_user(bob)
    )
    assert compare.status_code == 404
    probe = app_client.post(
        "/v1/probes",
        json={"experiment_id": experiment["id"], "spec": {"kind": "loss_mia"}},
        headers=as_user(bob),
    )
    assert probe.status_code == 422 and "no such experiment" in probe.text  # as if unknown
    # Ada sees her own, in her personal project.
    mine = app_client.get("/v1/experiments", headers=as_user(ada)).json()
    assert mine["total"] == 3  # the experiment and the sweep's two children
    assert {item["project_id"] for item in mine["items"]} == {experiment["project_id"]}


def test_roles_decide_what_a_member_of_anothers_project_may_do(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada, bob = keys["ada"]["key"], keys["bob"]["key"]
    experiment = _submit(app_client, ada)
    project = uuid.UUID(experiment["project_id"])

    def give_bob(role: Role) -> None:
        with sessions_of(secured).begin() as session:
            _set_role(session, project, keys["bob"]["user"], role)

    give_bob(Role.viewer)
    assert app_client.get(f"/v1/experiments/{experiment['id']}", headers=as_user(bob)).is_success
    refused = app_client.post(f"/v1/experiments/{experiment['id']}/cancel", headers=as_user(bob))
    assert refused.status_code == 403 and "maintainer" in refused.text, refused.text
    submit = app_client.post(
        "/v1/experiments",
        json={"spec": tiny_capacity_spec(), "project_id": str(project)},
        headers=as_user(bob),
    )
    assert submit.status_code == 403 and "member role" in submit.text, submit.text

    give_bob(Role.member)
    own = _submit(app_client, bob, project_id=str(project))
    assert own["project_id"] == str(project)
    assert app_client.post(f"/v1/experiments/{own['id']}/cancel", headers=as_user(bob)).is_success
    refused = app_client.post(f"/v1/experiments/{experiment['id']}/cancel", headers=as_user(bob))
    assert refused.status_code == 403 and "maintainer" in refused.text

    give_bob(Role.maintainer)
    cancel = app_client.post(f"/v1/experiments/{experiment['id']}/cancel", headers=as_user(bob))
    assert cancel.is_success, cancel.text


def _set_role(session: Session, project: uuid.UUID, user: uuid.UUID, role: Role) -> None:
    row = session.get(ProjectMember, (project, user))
    if row is None:
        session.add(ProjectMember(project_id=project, user_id=user, role=role))
    else:
        row.role = role


def test_an_unknown_project_is_a_422_naming_the_field(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    response = app_client.post(
        "/v1/experiments",
        json={"spec": tiny_capacity_spec(), "project_id": str(uuid.uuid4())},
        headers=as_user(keys["ada"]["key"]),
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["path"] == "project_id"


def test_auth_is_off_on_loopback_by_default_on_elsewhere_and_required_in_production() -> None:
    assert not Settings(bind_host="127.0.0.1").auth_enabled
    assert not Settings(bind_host="localhost").auth_enabled
    assert Settings(bind_host="0.0.0.0").auth_enabled
    assert Settings(bind_host="127.0.0.1", auth="on").auth_enabled
    production = {
        "environment": "production",
        "database_url": "postgresql://x",
        "broker_url": "redis://x",
    }
    assert Settings(**production).auth_enabled
    with pytest.raises(ValueError, match="refuses MEMLAB_AUTH=off"):
        Settings(**production, auth="off")


def test_the_probes_an_experiment_lists_belong_to_its_project(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    from store.artifacts import ArtifactStore
    from worker.runner import RunContext, execute_run

    ada, bob = keys["ada"]["key"], keys["bob"]["key"]
    experiment = _submit(
        app_client, ada, spec=tiny_capacity_spec(task="facts", probes=[{"kind": "exact_recall"}])
    )
    worker = RunContext(
        sessions=sessions_of(secured),
        artifacts=ArtifactStore(secured.resolved_artifact_dir),
        worker_name="test-worker",
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
    )
    execute_run(worker, uuid.UUID(experiment["id"]))
    probes = app_client.get(
        "/v1/probes", params={"experiment_id": experiment["id"]}, headers=as_user(ada)
    ).json()
    assert probes["total"] == 1 and probes["items"][0]["status"] == "succeeded"
    assert probes["items"][0]["project_id"] == experiment["project_id"]
    probe_id = probes["items"][0]["id"]
    assert app_client.get(f"/v1/probes/{probe_id}", headers=as_user(bob)).status_code == 404
    assert app_client.get("/v1/probes", headers=as_user(bob)).json()["total"] == 0


def test_in_production_a_request_without_a_key_is_a_401(
    postgres_server_url: str, redis_server_url: str, tmp_path: Path
) -> None:
    """The production stack (PostgreSQL, Redis broker, rate limits counted in Redis),
    started as the lab's server would be: no key, no answer but the health checks."""
    from tests.conftest import _truncate_all

    _truncate_all(postgres_server_url)
    production = Settings(
        environment="production",
        data_dir=tmp_path,
        database_url=postgres_server_url,
        broker_url=f"{redis_server_url}/13",
    )
    assert production.auth_enabled
    with sessions_of(production).begin() as session:
        _, issued = create_user(session, "ada")
    try:
        with TestClient(create_app(production, run_reaper=False)) as client:
            for path in ("/v1/experiments", "/v1/me", "/v1/sweeps", "/v1/audit"):
                refused = client.get(path)
                assert refused.status_code == 401, path
                assert refused.json()["error"]["code"] == "unauthorized"
            assert client.get("/healthz").status_code == 200
            assert client.get("/v1/me", headers=as_user(issued.key)).json()["name"] == "ada"
    finally:
        _truncate_all(postgres_server_url)


def _finished(client: TestClient, settings: Settings, key: str, **body: Any) -> str:
    """An experiment of `key`'s user marked succeeded through the state machine."""
    from store import runs

    experiment_id = _submit(client, key, **body)["id"]
    with sessions_of(settings).begin() as session:
        runs.claim_run(session, uuid.UUID(experiment_id), "test-worker")
        runs.finish_run(session, uuid.UUID(experiment_id), {"ok": True})
    return str(experiment_id)


def test_an_idempotency_key_never_replays_a_run_of_another_project(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada, bob = keys["ada"]["key"], keys["bob"]["key"]
    shared = app_client.post("/v1/projects", json={"name": "shared"}, headers=as_user(ada))
    project = shared.json()["id"]
    members = f"/v1/projects/{project}/members/bob"
    app_client.put(members, json={"role": "member"}, headers=as_user(ada))
    retry = {**as_user(bob), "Idempotency-Key": "k1"}
    body = {"spec": tiny_capacity_spec(), "project_id": project}
    first = app_client.post("/v1/experiments", json=body, headers=retry)
    assert first.status_code == 201
    replayed = app_client.post("/v1/experiments", json=body, headers=retry)
    assert replayed.headers["Memlab-Submission"] == "replayed"
    assert replayed.json()["id"] == first.json()["id"]
    elsewhere = app_client.post(
        "/v1/experiments", json={"spec": tiny_capacity_spec()}, headers=retry
    )  # the same key, his personal project: another request
    assert elsewhere.status_code == 422, elsewhere.text
    sweep_body = {"base": tiny_capacity_spec(), "project_id": project}
    assert app_client.post("/v1/sweeps", json=sweep_body, headers=retry).status_code == 201
    app_client.delete(members, headers=as_user(ada))  # bob leaves the project
    for path, again in (("/v1/experiments", body), ("/v1/sweeps", sweep_body)):
        answer = app_client.post(path, json=again, headers=retry)
        assert answer.status_code == 422 and first.json()["id"] not in answer.text, path


def test_a_stranger_cannot_tell_a_project_from_one_that_does_not_exist(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    adas = app_client.get("/v1/me", headers=ada).json()["personal_project"]
    answers = [
        app_client.post(
            "/v1/experiments", json={"spec": tiny_capacity_spec(), "project_id": p}, headers=bob
        )
        for p in (adas, str(uuid.uuid4()))
    ]
    assert [a.status_code for a in answers] == [422, 422]
    assert answers[0].json()["error"]["code"] == answers[1].json()["error"]["code"]


def test_a_reference_probe_takes_its_reference_from_the_targets_project(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada = keys["ada"]["key"]
    target = _finished(
        app_client, secured, ada, spec=tiny_capacity_spec(task="facts", reference_data="reserve")
    )
    other = app_client.post("/v1/projects", json={"name": "other"}, headers=as_user(ada))
    reference_spec = tiny_capacity_spec(task="facts", reference_data="train_on")
    spec = {"kind": "reference_mia"}
    for project, expected in ((other.json()["id"], 422), (None, 201)):
        reference = _finished(app_client, secured, ada, spec=reference_spec, project_id=project)
        answer = app_client.post(
            "/v1/probes",
            json={"experiment_id": target, "spec": {**spec, "reference_experiment_id": reference}},
            headers=as_user(ada),
        )
        assert answer.status_code == expected, answer.text
        if expected == 422:
            detail = answer.json()["error"]["details"][0]
            assert (
                detail["path"] == "spec.reference_experiment_id" and "project" in detail["message"]
            )
