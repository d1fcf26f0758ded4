"""GET /v1/workers: every node, what it offers, and what it runs, shown by project."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from store import runs, workers
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of
from tests.conftest import tiny_capacity_spec

NODE = workers.Registration(
    name="gpu0@box",
    hostname="box",
    pid=7,
    queues=["cpu", "gpu"],
    devices=[{"index": 0, "name": "H100", "memory_gib": 80.0}],
    concurrency=2,
    version="0.1.0",
)


def test_a_node_lists_its_devices_and_runs_whose_ids_only_their_project_sees(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    ada, bob = as_user(keys["ada"]["key"]), as_user(keys["bob"]["key"])
    experiment = app_client.post(
        "/v1/experiments", json={"spec": tiny_capacity_spec()}, headers=ada
    ).json()
    with sessions_of(secured).begin() as session:
        workers.register(session, NODE)
        runs.claim_run(session, uuid.UUID(experiment["id"]), "gpu0@box:0a1b2c3d")
    for caller, shown_id in ((ada, experiment["id"]), (bob, None)):
        (listed,) = app_client.get("/v1/workers", headers=caller).json()["items"]
        assert (listed["name"], listed["live"], listed["busy"], listed["concurrency"]) == (
            "gpu0@box",
            True,
            1,
            2,
        )
        assert listed["devices"][0]["memory_gib"] == 80.0
        assert [run["id"] for run in listed["running"]] == [shown_id]
        assert listed["running"][0]["kind"] == ("capacity_tradeoff" if shown_id else None)
    assert app_client.get("/v1/workers").status_code == 401


def test_an_admin_drains_a_node_and_the_audit_log_says_who(
    app_client: TestClient, keys: dict[str, Any], secured: Settings
) -> None:
    from store.identity import create_user

    with sessions_of(secured).begin() as session:
        workers.register(session, NODE)
        _, issued = create_user(session, "root", admin=True)
    root, ada = as_user(issued.key), as_user(keys["ada"]["key"])
    refused = app_client.post("/v1/workers/gpu0@box/drain", headers=ada)
    assert refused.status_code == 403 and "admins" in refused.text
    assert app_client.post("/v1/workers/nobody@box/drain", headers=root).status_code == 404
    drained = app_client.post("/v1/workers/gpu0@box/drain", headers=root)
    assert drained.status_code == 200 and drained.json()["draining"] is True
    (event,) = app_client.get(
        "/v1/audit", params={"action": "worker.drained"}, headers=root
    ).json()["items"]
    assert (event["actor"], event["target"]) == ("root", "gpu0@box")
    with sessions_of(secured).begin() as session:
        workers.register(session, NODE)  # the node restarts: no longer draining
    (listed,) = app_client.get("/v1/workers", headers=ada).json()["items"]
    assert listed["draining"] is False
