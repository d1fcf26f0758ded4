"""What the dashboard reads beyond the listings it shares with the SDK: facets, a
listing by project, artifact downloads, queue depths and quotas, on both databases."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from store import repository
from store.models import Run, RunStatus
from store.settings import Settings
from tests.api.conftest import as_user, sessions_of
from tests.conftest import tiny_capacity_spec


def submit(client: TestClient, kind_spec: dict[str, Any], tags: list[str], **headers: str) -> str:
    response = client.post(
        "/v1/experiments", json={"spec": kind_spec, "tags": tags}, headers=headers or None
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def set_status(settings: Settings, run_id: str, status: RunStatus) -> None:
    with sessions_of(settings).begin() as session:
        session.execute(update(Run).where(Run.id == uuid.UUID(run_id)).values(status=status))


def test_facets_count_each_value_under_the_other_filters(
    client: TestClient, settings: Settings
) -> None:
    wide = submit(client, tiny_capacity_spec(model={"n_embd": 28, "n_head": 2}), ["a", "b"])
    submit(client, tiny_capacity_spec(model={"n_embd": 14, "n_head": 2}), ["a"])
    submit(client, tiny_capacity_spec(model={"n_embd": 14, "n_head": 2}), [])
    set_status(settings, wide, RunStatus.succeeded)

    everything = client.get("/v1/experiments/facets").json()
    assert everything["total"] == 3
    assert everything["status"] == {"queued": 2, "succeeded": 1}
    assert everything["kind"] == {"capacity_tradeoff": 3}
    assert everything["tag"] == {"a": 2, "b": 1}
    assert [(p["name"], p["count"]) for p in everything["project"]] == [("local", 3)]

    # Filtered by status: the other facets count only the queued runs; the status facet
    # still counts every status, so that the user can switch to another.
    queued = client.get("/v1/experiments/facets", params={"status": "queued"}).json()
    assert queued["total"] == 2
    assert queued["status"] == {"queued": 2, "succeeded": 1}
    assert queued["tag"] == {"a": 1}
    # The filter language narrows every facet.
    narrow = client.get("/v1/experiments/facets", params={"where": "spec.model.n_embd = 14"}).json()
    assert narrow["total"] == 2 and narrow["status"] == {"queued": 2}


def test_a_bad_filter_in_facets_is_a_422_naming_where(client: TestClient) -> None:
    response = client.get("/v1/experiments/facets", params={"where": "spec.x >"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["path"] == "where"


def test_facets_and_listings_show_only_the_users_projects(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    ada, bob = keys["ada"]["key"], keys["bob"]["key"]
    submit(app_client, tiny_capacity_spec(), ["ada-tag"], **as_user(ada))
    facets = app_client.get("/v1/experiments/facets", headers=as_user(bob)).json()
    assert facets["total"] == 0 and facets["tag"] == {} and facets["project"] == []
    ada_project = app_client.get("/v1/me", headers=as_user(ada)).json()["personal_project"]
    # Naming ada's project does not let bob in: it lists nothing, as if it were empty.
    listed = app_client.get(
        "/v1/experiments", params={"project_id": ada_project}, headers=as_user(bob)
    )
    assert listed.status_code == 200 and listed.json()["total"] == 0
    mine = app_client.get(
        "/v1/experiments", params={"project_id": ada_project}, headers=as_user(ada)
    ).json()
    assert mine["total"] == 1


def test_an_artifact_downloads_byte_for_byte(client: TestClient, settings: Settings) -> None:
    run_id = submit(client, tiny_capacity_spec(), [])
    content = b"not really safetensors \x00\x01"
    relative = f"{run_id}/checkpoints/step_000010.safetensors"
    file = settings.resolved_artifact_dir / relative
    file.parent.mkdir(parents=True)
    file.write_bytes(content)
    with sessions_of(settings).begin() as session:
        repository.record_artifact(
            session,
            uuid.UUID(run_id),
            kind="checkpoint",
            step=10,
            path=relative,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
    listed = client.get(f"/v1/experiments/{run_id}/artifacts").json()
    assert [a["path"] for a in listed] == [relative]
    response = client.get(f"/v1/experiments/{run_id}/artifacts/{relative}")
    assert response.status_code == 200
    assert response.content == content
    assert "step_000010.safetensors" in response.headers["content-disposition"]


def test_only_a_runs_own_artifacts_download(client: TestClient, settings: Settings) -> None:
    run_id = submit(client, tiny_capacity_spec(), [])
    secret = settings.resolved_artifact_dir.parent / "memlab-secret.txt"
    secret.write_text("not for download")
    # %2E%2E: a client would resolve a literal ".." before sending it.
    for path in ("%2E%2E/memlab-secret.txt", "elsewhere/file.bin", f"{run_id}/none.safetensors"):
        response = client.get(f"/v1/experiments/{run_id}/artifacts/{path}")
        assert response.status_code == 404, path
    # A row whose path leads out of the root (a worker's bug) still serves nothing.
    with sessions_of(settings).begin() as session:
        repository.record_artifact(
            session,
            uuid.UUID(run_id),
            kind="artifact",
            step=None,
            path="../memlab-secret.txt",
            size_bytes=16,
            sha256="0" * 64,
        )
    escaped = client.get(f"/v1/experiments/{run_id}/artifacts/..%2Fmemlab-secret.txt")
    assert escaped.status_code == 404
    assert b"not for download" not in escaped.content


def test_another_projects_artifacts_are_not_found(
    app_client: TestClient, keys: dict[str, Any]
) -> None:
    run_id = submit(app_client, tiny_capacity_spec(), [], **as_user(keys["ada"]["key"]))
    response = app_client.get(
        f"/v1/experiments/{run_id}/artifacts/x.bin", headers=as_user(keys["bob"]["key"])
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"experiment {run_id} not found"


def test_workers_lists_queue_depths_and_quotas(client: TestClient, settings: Settings) -> None:
    for _ in range(3):
        submit(client, tiny_capacity_spec(), [])
    gpu_spec = tiny_capacity_spec()
    response = client.post("/v1/experiments", json={"spec": gpu_spec, "resources": {"gpus": 1}})
    assert response.status_code == 201
    found = client.get("/v1/workers").json()
    queues = {q["name"]: (q["queued"], q["running"]) for q in found["queues"]}
    assert queues == {"cpu": (3, 0), "gpu": (1, 0)}
    assert found["quotas"]["runs_per_user"] == settings.quota_runs_per_user
    assert set(found["quotas"]) == {
        "runs_per_user",
        "runs_per_project",
        "gpu_runs_per_user",
        "gpu_runs_per_project",
        "gpu_hours_per_user",
        "gpu_hours_per_project",
    }


def test_facets_take_a_tag_inside_the_filter_language(client: TestClient) -> None:
    """`where` compiles a tag to an EXISTS over run_tags; the tag facet must not join it
    away (it did: a 500)."""
    submit(client, tiny_capacity_spec(), ["a", "b"])
    submit(client, tiny_capacity_spec(), ["a"])
    submit(client, tiny_capacity_spec(), ["c"])
    facets = client.get("/v1/experiments/facets", params={"where": 'tag = "a"'})
    assert facets.status_code == 200, facets.text
    assert facets.json()["total"] == 2
    assert facets.json()["tag"] == {"a": 2, "b": 1}
    negated = client.get("/v1/experiments/facets", params={"where": 'not tag = "a"'}).json()
    assert negated["total"] == 1 and negated["tag"] == {"c": 1}


def test_compare_downsamples_each_runs_series(client: TestClient, settings: Settings) -> None:
    run_ids = [submit(client, tiny_capacity_spec(), []) for _ in range(2)]
    with sessions_of(settings).begin() as session:
        for run_id in run_ids:
            points = [(step, "train/loss", 1.0 / step) for step in range(1, 51)]
            repository.write_metrics(session, uuid.UUID(run_id), points)
    thin = client.get(
        "/v1/experiments/compare", params={"ids": ",".join(run_ids), "max_points": 3}
    ).json()
    assert thin["steps"] == [1, 25, 50]
    assert thin["series"][run_ids[0]]["train/loss"] == [1.0, 1 / 25, 1 / 50]
