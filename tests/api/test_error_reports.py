"""What a wrong request is told: the field at fault, the reason, and the limit in force."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from store import runs
from store.db import make_engine, make_session_factory
from store.settings import Settings
from tests.conftest import tiny_capacity_spec


def _post_raw(client: TestClient, body: str) -> dict:
    response = client.post(
        "/v1/experiments", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    error: dict = response.json()["error"]
    return error


def test_invalid_json_is_a_body_decode_error_with_its_position(client: TestClient) -> None:
    body = '{"spec": {"kind": "capacity_tradeoff", "seed": }}'
    error = _post_raw(client, body)
    assert error["code"] == "validation_error"
    assert [(d["path"], d["type"]) for d in error["details"]] == [("body", "json_invalid")]
    position = body.index("}}")  # where the value should have been
    assert f"at character {position}" in error["details"][0]["message"]
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_number_is_refused_as_such(client: TestClient, value: str) -> None:
    body = '{"spec": {"kind": "capacity_tradeoff", "train": {"lr": VALUE}}}'
    error = _post_raw(client, body.replace("VALUE", value))
    assert [(d["path"], d["type"]) for d in error["details"]] == [
        ("spec.train.lr", "finite_number")
    ]
    assert "finite" in error["details"][0]["message"]


def test_a_request_over_the_server_and_the_schema_cap_names_the_server_setting(
    client: TestClient, settings: Settings
) -> None:
    steps = 20_000_000  # over MEMLAB_MAX_STEPS (2M) and over the schema's bound (10M)
    response = client.post(
        "/v1/experiments",
        json={"spec": {"kind": "capacity_tradeoff", "train": {"steps": steps}}},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "limit_exceeded"
    (detail,) = error["details"]
    assert detail["path"] == "spec.train.steps" and detail["type"] == "limit_exceeded"
    assert f"at most {settings.max_steps:,} (MEMLAB_MAX_STEPS)" in detail["message"]
    assert "10000000" not in error["message"]

    # Alongside another mistake the code is the general one, each detail still its own.
    response = client.post(
        "/v1/experiments",
        json={"spec": {"kind": "capacity_tradeoff", "train": {"steps": steps}, "sede": 1}},
    )
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    types = {d["path"]: d["type"] for d in error["details"]}
    assert types == {"spec.train.steps": "limit_exceeded", "spec.sede": "extra_forbidden"}


@pytest.fixture
def generous_client(settings: Settings) -> Iterator[TestClient]:
    """A server whose step cap is above the schema's bound."""
    generous = settings.model_copy(update={"max_steps": 50_000_000})
    with TestClient(create_app(generous, run_reaper=False)) as test_client:
        yield test_client


def test_where_the_schema_bound_is_the_lower_one_it_is_the_one_named(
    generous_client: TestClient,
) -> None:
    response = generous_client.post(
        "/v1/experiments",
        json={"spec": {"kind": "capacity_tradeoff", "train": {"steps": 20_000_000}}},
    )
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert (detail["path"], detail["type"]) == ("spec.train.steps", "less_than_equal")


def test_a_method_a_path_does_not_serve_is_a_405_allowing_every_one_it_does(
    client: TestClient,
) -> None:
    for method, path, allowed in [
        ("PUT", "/v1/experiments", "GET, POST"),
        ("OPTIONS", "/v1/probes", "GET, POST"),
        ("DELETE", f"/v1/experiments/{uuid.uuid4()}", "GET"),
        ("GET", f"/v1/experiments/{uuid.uuid4()}/cancel", "POST"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allowed, (method, path)
        assert response.json()["error"]["code"] == "method_not_allowed"


def _succeeded(client: TestClient, settings: Settings, spec: dict) -> str:
    """An experiment marked succeeded through the state machine (no training)."""
    response = client.post("/v1/experiments", json={"spec": spec})
    assert response.status_code == 201, response.text
    experiment_id = uuid.UUID(response.json()["id"])
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        runs.claim_run(session, experiment_id, "test-worker")
        runs.finish_run(session, experiment_id, {"ok": True})
    return str(experiment_id)


def test_a_reference_that_cannot_serve_is_a_422_naming_the_reference_field(
    client: TestClient, settings: Settings
) -> None:
    target = _succeeded(
        client, settings, tiny_capacity_spec(task="facts", reference_data="reserve")
    )
    other_kind = _succeeded(client, settings, {"kind": "associative_recall"})
    response = client.post(
        "/v1/probes",
        json={
            "experiment_id": target,
            "spec": {"kind": "reference_mia", "reference_experiment_id": other_kind},
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "probe_not_applicable"
    (detail,) = error["details"]
    assert detail["path"] == "spec.reference_experiment_id"
    assert "associative_recall" in detail["message"]
