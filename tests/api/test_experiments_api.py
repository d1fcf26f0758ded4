"""The /v1/experiments API over a real database and broker."""

from __future__ import annotations

import uuid

from celery import Celery
from fastapi.testclient import TestClient

from store import repository, runs
from store.db import make_engine, make_session_factory
from store.settings import Settings
from tests.api.conftest import TEST_NODE_QUEUE, hand_out, published_ids
from tests.conftest import tiny_capacity_spec


def submit(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/experiments", json={"spec": tiny_capacity_spec(), **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_submission_is_stored_then_handed_out_to_its_queue_by_the_dispatcher(
    client: TestClient, broker: Celery
) -> None:
    response = client.post(
        "/v1/experiments",
        json={"spec": {"kind": "capacity_tradeoff"}, "name": "n14", "tags": ["x"]},
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"].endswith(f"/v1/experiments/{body['id']}")
    assert (body["status"], body["queue"], body["name"], body["tags"]) == (
        "queued",
        "cpu",
        "n14",
        ["x"],
    )
    assert body["enqueued_at"] is None  # not published by the submission
    assert body["spec"]["train"]["steps"] == 30_000
    assert published_ids(broker, TEST_NODE_QUEUE) == []
    hand_out(client)
    assert published_ids(broker, TEST_NODE_QUEUE) == [body["id"]]
    assert client.get(f"/v1/experiments/{body['id']}").json()["enqueued_at"] is not None


def test_a_cuda_spec_goes_to_the_gpu_queue(client: TestClient, broker: Celery) -> None:
    body = submit(client, spec=tiny_capacity_spec(train={"device": "cuda"}))
    assert body["queue"] == "gpu"
    hand_out(client, queues=("cpu",))  # a node of the cpu queue only: not for it
    assert published_ids(broker, TEST_NODE_QUEUE) == []
    hand_out(client, queues=("gpu",))
    assert published_ids(broker, TEST_NODE_QUEUE) == [body["id"]]


def test_a_misspelt_field_is_a_422_naming_its_path(client: TestClient) -> None:
    response = client.post(
        "/v1/experiments", json={"spec": {"kind": "capacity_tradeoff", "train": {"stepz": 5}}}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["path"] for d in error["details"]] == ["spec.train.stepz"]
    assert "spec.train.stepz" in error["message"]


def test_invalid_values_and_unknown_kinds_are_422s(client: TestClient) -> None:
    cases = {
        "spec.train.lr": {"spec": {"kind": "capacity_tradeoff", "train": {"lr": -1}}},
        "spec.task": {"spec": {"kind": "capacity_tradeoff", "task": "poetry"}},
        "spec.kind": {"spec": {"kind": "no_such_kind"}},
        "tags.0": {"spec": {"kind": "capacity_tradeoff"}, "tags": ["has space"]},
        "spec": {"name": "no spec"},
        "colour": {"spec": {"kind": "capacity_tradeoff"}, "colour": "red"},
        "spec.size": {"spec": {"kind": "capacity_tradeoff", "size": {}}},
    }
    for path, body in cases.items():
        response = client.post("/v1/experiments", json=body)
        assert response.status_code == 422, (path, response.text)
        assert path in [d["path"] for d in response.json()["error"]["details"]], (
            path,
            response.json(),
        )


def test_malformed_json_is_a_422_not_a_500(client: TestClient) -> None:
    response = client.post(
        "/v1/experiments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_unknown_ids_are_404s_in_the_error_shape(client: TestClient) -> None:
    missing = uuid.uuid4()
    for method, path in [
        ("GET", f"/v1/experiments/{missing}"),
        ("GET", f"/v1/experiments/{missing}/metrics"),
        ("GET", f"/v1/experiments/{missing}/events"),
        ("GET", f"/v1/experiments/{missing}/artifacts"),
        ("POST", f"/v1/experiments/{missing}/cancel"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_listing_filters_by_kind_status_and_tag_and_paginates(client: TestClient) -> None:
    first = submit(client, tags=["sweep"])
    second = submit(client)
    third = submit(client, tags=["sweep"])
    client.post(f"/v1/experiments/{second['id']}/cancel")
    listing = client.get("/v1/experiments", params={"limit": 2}).json()
    assert (listing["total"], [e["id"] for e in listing["items"]]) == (
        3,
        [third["id"], second["id"]],
    )
    tagged = client.get("/v1/experiments", params={"tag": "sweep"}).json()
    assert [e["id"] for e in tagged["items"]] == [third["id"], first["id"]]
    cancelled = client.get("/v1/experiments", params={"status": "cancelled"}).json()
    assert [e["id"] for e in cancelled["items"]] == [second["id"]]
    assert client.get("/v1/experiments", params={"kind": "other"}).json()["total"] == 0
    assert client.get("/v1/experiments", params={"limit": 0}).status_code == 422
    assert client.get("/v1/experiments", params={"status": "bogus"}).status_code == 422


def test_cancel_a_queued_run_then_cancel_again_is_a_409(client: TestClient) -> None:
    experiment = submit(client)
    response = client.post(f"/v1/experiments/{experiment['id']}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    again = client.post(f"/v1/experiments/{experiment['id']}/cancel")
    assert again.status_code == 409
    assert "it is cancelled" in again.json()["error"]["message"]


def test_metrics_are_served_per_key_and_downsampled(client: TestClient, settings: Settings) -> None:
    experiment = submit(client)
    experiment_id = uuid.UUID(experiment["id"])
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        repository.write_metrics(
            session,
            experiment_id,
            [(s, "train/loss", 2.0 / s) for s in range(1, 51)] + [(50, "eval/acc", 0.75)],
        )
    full = client.get(f"/v1/experiments/{experiment_id}/metrics").json()
    assert set(full["series"]) == {"train/loss", "eval/acc"}
    assert full["series"]["train/loss"]["steps"] == list(range(1, 51))
    thin = client.get(
        f"/v1/experiments/{experiment_id}/metrics", params={"keys": "train/loss", "max_points": 3}
    ).json()
    assert thin["series"] == {
        "train/loss": {"steps": [1, 25, 50], "values": [2.0, 2.0 / 25, 0.04], "total_points": 50}
    }


def test_events_stream_reports_status_changes_until_the_end(
    client: TestClient, settings: Settings
) -> None:
    experiment = submit(client)
    experiment_id = uuid.UUID(experiment["id"])
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        runs.claim_run(session, experiment_id, "test-worker")
        runs.finish_run(session, experiment_id, {"ok": True})
    with client.stream("GET", f"/v1/experiments/{experiment_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in response.iter_lines() if line.startswith("event:")]
    assert frames == ["event: status", "event: end"]


def test_kinds_list_schema_and_default_spec(client: TestClient) -> None:
    kinds = {k["name"]: k for k in client.get("/v1/kinds").json()}
    capacity = kinds["capacity_tradeoff"]
    assert capacity["default_spec"]["task"] == "arithmetic"
    assert "train" in capacity["json_schema"]["properties"]
    assert client.get("/v1/kinds/capacity_tradeoff").json()["name"] == "capacity_tradeoff"
    assert client.get("/v1/kinds/nope").status_code == 404


def test_openapi_documents_the_spec_union(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "CapacityTradeoffSpec" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_values_of_the_wrong_json_type_are_422s_not_500s(client: TestClient) -> None:
    for spec in (
        {"kind": "capacity_tradeoff", "task": []},
        {"kind": "capacity_tradeoff", "size": ["n14"]},
        {"kind": "capacity_tradeoff", "train": []},
        {"kind": "capacity_tradeoff", "model": "big"},
        {"kind": ["capacity_tradeoff"]},
        [],
    ):
        response = client.post("/v1/experiments", json={"spec": spec})
        assert response.status_code == 422, (spec, response.text)


def test_the_dispatcher_measures_its_queues_on_the_real_broker(
    client: TestClient, broker: Celery
) -> None:
    from worker.dispatch import CeleryDispatcher

    dispatcher = CeleryDispatcher(broker)
    assert dispatcher.queue_length(TEST_NODE_QUEUE) == 0
    submit(client)
    submit(client)
    hand_out(client)
    assert dispatcher.queue_length(TEST_NODE_QUEUE) == 2
    assert dispatcher.queue_length("never-declared") == 0
