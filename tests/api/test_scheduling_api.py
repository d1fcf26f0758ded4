"""Priority and resource requests through the API: stored with the run (and a sweep's
children and groups), checked field by field, and a raised priority only for admins."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from store.identity import create_user
from store.models import Run, RunType
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of
from tests.conftest import tiny_capacity_spec

BIG_GPU = {"gpus": 1, "gpu_memory_gib": 40.0}


def test_a_run_keeps_its_priority_and_resources_and_a_gpu_request_takes_the_gpu_queue(
    client: TestClient, settings: Settings
) -> None:
    response = client.post(
        "/v1/experiments",
        json={"spec": tiny_capacity_spec(), "priority": 3, "resources": BIG_GPU},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["priority"], body["resources"], body["queue"]) == (3, BIG_GPU, "gpu")
    assert body["dispatched_to"] is None
    plain = client.post("/v1/experiments", json={"spec": tiny_capacity_spec()}).json()
    assert (plain["priority"], plain["resources"], plain["queue"]) == (
        0,
        {"gpus": 0, "gpu_memory_gib": 0.0},
        "cpu",
    )

    sweep = client.post(
        "/v1/sweeps",
        json={"base": tiny_capacity_spec(), "seeds": 2, "priority": -2, "resources": BIG_GPU},
    ).json()
    with sessions_of(settings)() as session:
        made = session.scalars(
            select(Run).where(Run.id.in_([*_child_ids(client, sweep["id"]), *_groups(session)]))
        ).all()
    assert {run.run_type for run in made} == {RunType.experiment, RunType.group}
    assert {(run.priority, run.gpus, run.gpu_memory_gib, run.queue) for run in made} == {
        (-2, 1, 40.0, "gpu")
    }


def _child_ids(client: TestClient, sweep_id: str) -> list[uuid.UUID]:
    children = client.get("/v1/experiments", params={"sweep_id": sweep_id}).json()["items"]
    return [uuid.UUID(child["id"]) for child in children]


def _groups(session: Any) -> list[Any]:
    return list(session.scalars(select(Run.id).where(Run.run_type == RunType.group)).all())


def test_bad_priorities_and_resource_requests_are_422s_naming_the_field(
    client: TestClient,
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"resources": {"gpu_memory_gib": 40}}, "resources"),  # memory of no GPU
        ({"resources": {"gpus": -1}}, "resources.gpus"),
        ({"resources": {"gpus": "1"}}, "resources.gpus"),  # no string for a number
        ({"resources": {"gpus": 1, "vram": 40}}, "resources.vram"),  # misspelt
        ({"priority": 11}, "priority"),
        ({"priority": True}, "priority"),
    ]
    for extra, path in cases:
        response = client.post("/v1/experiments", json={"spec": tiny_capacity_spec(), **extra})
        assert response.status_code == 422, (extra, response.text)
        details = response.json()["error"]["details"]
        assert [detail["path"] for detail in details] == [path], (extra, details)
    response = client.post("/v1/experiments", json={"spec": tiny_capacity_spec(), **cases[0][0]})
    assert "set gpus to 1 or more" in response.text


def test_only_an_admin_gives_a_priority_above_zero_and_anyone_may_lower_theirs(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada = as_user(keys["ada"]["key"])
    with sessions_of(secured).begin() as session:
        _, issued = create_user(session, "root", admin=True)
    admin = as_user(issued.key)
    experiment = {"spec": tiny_capacity_spec(), "priority": 1}
    refused = app_client.post("/v1/experiments", json=experiment, headers=ada)
    assert refused.status_code == 403 and "only an admin" in refused.text, refused.text
    sweep = {"base": tiny_capacity_spec(), "seeds": 2, "priority": 1}
    assert app_client.post("/v1/sweeps", json=sweep, headers=ada).status_code == 403
    lowered = app_client.post("/v1/experiments", json={**experiment, "priority": -3}, headers=ada)
    assert lowered.status_code == 201 and lowered.json()["priority"] == -3
    raised = app_client.post("/v1/experiments", json={**experiment, "priority": 5}, headers=admin)
    assert raised.status_code == 201 and raised.json()["priority"] == 5
