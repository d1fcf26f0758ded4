"""Limits, idempotent retries and result reuse on POST /v1/experiments."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from store import runs
from store.db import make_engine, make_session_factory
from store.settings import Settings
from tests.conftest import tiny_capacity_spec


def test_requests_over_the_servers_limits_are_422s_naming_the_limit(client: TestClient) -> None:
    cases = {
        "spec.train.steps": {"train": {"steps": 3_000_000}},
        "spec.train.batch_size": {"train": {"batch_size": 10_000}},
        "spec.model": {"model": {"n_layer": 48, "n_embd": 4096, "n_head": 32}},
        "spec.max_wall_s": {"max_wall_s": 10**9},
    }
    for path, fields in cases.items():
        response = client.post(
            "/v1/experiments", json={"spec": {"kind": "capacity_tradeoff", **fields}}
        )
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "limit_exceeded"
        assert [d["path"] for d in error["details"]] == [path]
        assert "MEMLAB_MAX_" in error["details"][0]["message"]


def test_an_oversized_body_is_a_413(client: TestClient, settings: Settings) -> None:
    padding = "x" * (settings.max_body_bytes + 10)
    response = client.post(
        "/v1/experiments", json={"spec": {"kind": "capacity_tradeoff"}, "name": padding}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_retry_with_the_same_idempotency_key_returns_the_same_experiment(
    client: TestClient,
) -> None:
    body = {"spec": tiny_capacity_spec(), "tags": ["retry"]}
    first = client.post("/v1/experiments", json=body, headers={"Idempotency-Key": "abc-1"})
    again = client.post("/v1/experiments", json=body, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert (first.headers["memlab-submission"], again.headers["memlab-submission"]) == (
        "created",
        "replayed",
    )
    assert client.get("/v1/experiments", params={"tag": "retry"}).json()["total"] == 1

    other = client.post(
        "/v1/experiments",
        json={"spec": tiny_capacity_spec(seed=9), "tags": ["retry"]},
        headers={"Idempotency-Key": "abc-1"},
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_reuse_returns_a_succeeded_run_with_the_same_spec_hash(
    client: TestClient, settings: Settings
) -> None:
    spec = tiny_capacity_spec()
    original = client.post("/v1/experiments", json={"spec": spec}).json()
    # Not finished yet: reuse has nothing to reuse and trains again.
    fresh = client.post("/v1/experiments", params={"reuse": "true"}, json={"spec": spec})
    assert fresh.status_code == 201 and fresh.json()["id"] != original["id"]

    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        runs.claim_run(session, uuid.UUID(original["id"]), "w")
        runs.finish_run(session, uuid.UUID(original["id"]), {"ok": 1})
    reused = client.post("/v1/experiments", params={"reuse": "true"}, json={"spec": spec})
    assert reused.status_code == 200
    assert reused.json()["id"] == original["id"]
    assert reused.headers["memlab-submission"] == "reused"
    # Same training, different wall-time limit: still the same numbers, still reused.
    limited = {**spec, "max_wall_s": 3600}
    assert (
        client.post("/v1/experiments?reuse=true", json={"spec": limited}).json()["id"]
        == original["id"]
    )
    # A different seed changes the numbers: a new run.
    reseeded = {**spec, "seed": 1}
    assert client.post("/v1/experiments?reuse=true", json={"spec": reseeded}).status_code == 201


def test_a_streamed_body_that_grows_past_the_limit_is_a_413(
    client: TestClient, settings: Settings
) -> None:
    def chunks():  # no Content-Length: the size is only known while reading
        yield b'{"spec": {"kind": "capacity_tradeoff"}, "name": "'
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/v1/experiments", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_the_dataset_size_limit_names_its_setting(database_url: str, tmp_path) -> None:
    from api.app import create_app

    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'b.db'}",
        max_dataset_items=100,
    )
    with TestClient(create_app(settings, run_reaper=False)) as small_server:
        response = small_server.post(
            "/v1/experiments", json={"spec": {"kind": "capacity_tradeoff"}}
        )
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["path"] == "spec" and "MEMLAB_MAX_DATASET_ITEMS" in detail["message"]
    assert "196" in detail["message"]


def test_a_large_dataset_within_the_default_cap_is_accepted(client: TestClient) -> None:
    # 5,196 lines is within the default 1,000,000-item cap.
    spec = {"kind": "capacity_tradeoff", "n_facts": 5000, "task": "facts"}
    response = client.post("/v1/experiments", json={"spec": spec})
    assert response.status_code == 201, response.text


def test_a_malformed_triplet_upload_is_a_422_naming_the_line(client: TestClient) -> None:
    content = "aspirin\tmay_treat\tpain\nibuprofen\tmay_treat\n"
    spec = {"kind": "kg_memorization", "triplets": {"format": "tsv", "content": content}}
    response = client.post("/v1/experiments", json={"spec": spec})
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["path"].startswith("spec.triplets")
    assert "line 2" in detail["message"]
