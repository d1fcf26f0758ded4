"""POST /v1/probes and friends: validation, applicability and queueing (no worker here)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from celery import Celery
from fastapi.testclient import TestClient
from httpx import Response

from store import runs
from store.db import make_engine, make_session_factory
from store.settings import Settings
from tests.api.conftest import TEST_NODE_QUEUE, hand_out, published_ids
from tests.conftest import tiny_capacity_spec


def finished_experiment(client: TestClient, settings: Settings, **spec: object) -> str:
    """An experiment marked succeeded through the real state machine (no training)."""
    experiment_id = client.post(
        "/v1/experiments", json={"spec": tiny_capacity_spec(**spec)}
    ).json()["id"]
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        runs.claim_run(session, uuid.UUID(experiment_id), "test-worker")
        runs.finish_run(session, uuid.UUID(experiment_id), {"ok": True})
    return str(experiment_id)


def test_a_probe_of_a_succeeded_experiment_is_queued_and_published(
    client: TestClient, settings: Settings, broker: Celery
) -> None:
    experiment_id = finished_experiment(client, settings, task="facts")
    response = client.post(
        "/v1/probes",
        json={"experiment_id": experiment_id, "spec": {"kind": "loss_mia", "max_items": 100}},
    )
    assert response.status_code == 201, response.text
    probe = response.json()
    assert probe["status"] == "queued" and probe["experiment_id"] == experiment_id
    assert probe["spec"]["max_items"] == 100 and probe["spec"]["bootstrap_rounds"] == 1000
    hand_out(client)  # the experiment, finished by hand, was never handed out
    assert published_ids(broker, TEST_NODE_QUEUE) == [probe["id"]]
    assert client.get(f"/v1/probes/{probe['id']}").json()["kind"] == "loss_mia"
    listed = client.get("/v1/probes", params={"experiment_id": experiment_id}).json()
    assert [p["id"] for p in listed["items"]] == [probe["id"]]
    # Probes are not experiments: the experiment listing does not show them.
    assert [e["id"] for e in client.get("/v1/experiments").json()["items"]] == [experiment_id]


def test_a_probe_that_cannot_apply_is_a_422_that_says_why(
    client: TestClient, settings: Settings
) -> None:
    experiment_id = finished_experiment(client, settings, task="arithmetic")
    response = client.post(
        "/v1/probes", json={"experiment_id": experiment_id, "spec": {"kind": "exposure"}}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "probe_not_applicable"
    assert "canaries" in error["message"] and "declare `canaries`" in error["message"]
    assert error["details"][0]["path"] == "spec.kind"


def test_probe_requests_with_bad_fields_are_422s_naming_the_path(
    client: TestClient, settings: Settings
) -> None:
    experiment_id = finished_experiment(client, settings, task="facts")
    cases = {
        "spec.kind": {"experiment_id": experiment_id, "spec": {"kind": "no_such_probe"}},
        "spec.k": {"experiment_id": experiment_id, "spec": {"kind": "min_k_mia", "k": 2}},
        "spec.kz": {"experiment_id": experiment_id, "spec": {"kind": "min_k_mia", "kz": 0.1}},
        "experiment_id": {"experiment_id": "not-a-uuid", "spec": {"kind": "loss_mia"}},
    }
    for path, body in cases.items():
        response = client.post("/v1/probes", json=body)
        assert response.status_code == 422, (path, response.text)
        assert path in [d["path"] for d in response.json()["error"]["details"]], response.text
    unknown = client.post(
        "/v1/probes", json={"experiment_id": str(uuid.uuid4()), "spec": {"kind": "loss_mia"}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"][0]["path"] == "experiment_id"


def test_probing_an_unfinished_experiment_is_a_409(client: TestClient) -> None:
    experiment_id = client.post("/v1/experiments", json={"spec": tiny_capacity_spec()}).json()["id"]
    response = client.post(
        "/v1/probes", json={"experiment_id": experiment_id, "spec": {"kind": "loss_mia"}}
    )
    assert response.status_code == 409
    assert "probes" in response.json()["error"]["message"]  # points at the auto-probe route


def test_a_reference_probe_needs_the_succeeded_run_trained_on_the_target_s_reserve(
    client: TestClient, settings: Settings
) -> None:
    target = finished_experiment(client, settings, task="facts", reference_data="reserve")
    reference_spec = tiny_capacity_spec(task="facts", reference_data="train_on")
    queued = client.post("/v1/experiments", json={"spec": reference_spec}).json()["id"]
    spec = {"kind": "reference_mia", "reference_experiment_id": queued}
    response = client.post("/v1/probes", json={"experiment_id": target, "spec": spec})
    assert response.status_code == 409  # not finished yet
    for reference, expected in [
        (str(uuid.uuid4()), "no such experiment"),
        # A rerun of the target trained on the target's own data, not on its reserve.
        (finished_experiment(client, settings, task="facts", reference_data="reserve"), "train_on"),
        # Trained on a reserve, but of other data: another facts_seed.
        (
            finished_experiment(
                client, settings, task="facts", reference_data="train_on", facts_seed=3
            ),
            "facts_seed",
        ),
    ]:
        spec["reference_experiment_id"] = reference
        response = client.post("/v1/probes", json={"experiment_id": target, "spec": spec})
        assert response.status_code == 422, response.text
        (detail,) = response.json()["error"]["details"]
        assert detail["path"] == "spec.reference_experiment_id"
        assert expected in detail["message"], detail
    spec["reference_experiment_id"] = finished_experiment(
        client, settings, task="facts", reference_data="train_on"
    )
    response = client.post("/v1/probes", json={"experiment_id": target, "spec": spec})
    assert response.status_code == 201, response.text


def test_an_experiment_may_list_probes_to_run_when_it_ends(client: TestClient) -> None:
    spec = tiny_capacity_spec(task="facts", probes=[{"kind": "loss_mia"}, {"kind": "exact_recall"}])
    assert client.post("/v1/experiments", json={"spec": spec}).status_code == 201
    # A probe the kind cannot serve, or an unknown one, is refused at submission.
    for probes, expected in [
        ([{"kind": "exposure"}], "spec.probes.0: probe 'exposure' needs canaries"),
        ([{"kind": "loss_mia"}, {"kind": "nope"}], "spec.probes.1: unknown probe kind 'nope'"),
        ([{"kind": "min_k_mia", "k": 5}], "spec.probes.0.k:"),
    ]:
        response = client.post("/v1/experiments", json={"spec": tiny_capacity_spec(probes=probes)})
        assert response.status_code == 422, response.text
        assert expected in response.json()["error"]["message"], response.text


def test_probe_kinds_list_their_needs_and_schemas(client: TestClient) -> None:
    kinds = {k["name"]: k for k in client.get("/v1/probe-kinds").json()}
    assert set(kinds) == {
        "exact_recall",
        "extraction",
        "loss_mia",
        "zlib_mia",
        "min_k_mia",
        "min_k_pp_mia",
        "reference_mia",
        "exposure",
        "knowledge_capacity",
        "generation_copy",
        "lira",
        "counterfactual",
    }
    assert kinds["exposure"]["needs"] == ["canaries"]
    assert kinds["lira"]["needs"] == ["held_out", "shadow_training"]
    assert kinds["loss_mia"]["needs"] == ["held_out"]
    assert kinds["min_k_mia"]["default_spec"]["k"] == 0.2
    assert kinds["reference_mia"]["default_spec"] is None  # the reference must be named
    assert "reference_experiment_id" in kinds["reference_mia"]["json_schema"]["required"]
    assert client.get("/v1/probe-kinds/nope").status_code == 404


def queued_probe(client: TestClient, settings: Settings) -> tuple[str, str]:
    """A queued probe of a succeeded experiment: (experiment id, probe id)."""
    experiment_id = finished_experiment(client, settings, task="facts")
    response = client.post(
        "/v1/probes", json={"experiment_id": experiment_id, "spec": {"kind": "loss_mia"}}
    )
    assert response.status_code == 201, response.text
    return experiment_id, response.json()["id"]


def assert_not_found(response: Response) -> None:
    assert response.status_code == 404, (response.request.url, response.text)
    assert response.json()["error"]["code"] == "not_found"


def test_the_probe_endpoints_answer_404_for_an_experiment_id(client: TestClient) -> None:
    experiment_id = client.post("/v1/experiments", json={"spec": tiny_capacity_spec()}).json()["id"]
    for method, path in [
        ("GET", f"/v1/probes/{experiment_id}"),
        ("GET", f"/v1/probes/{experiment_id}/events"),
        ("POST", f"/v1/probes/{experiment_id}/cancel"),
        ("GET", f"/v1/probes/{uuid.uuid4()}"),
        ("GET", f"/v1/probes/{uuid.uuid4()}/events"),
    ]:
        assert_not_found(client.request(method, path))
    # The refused cancel did not touch the experiment.
    assert client.get(f"/v1/experiments/{experiment_id}").json()["status"] == "queued"


def test_the_experiment_endpoints_answer_404_for_a_probe_id(
    client: TestClient, settings: Settings
) -> None:
    _, probe_id = queued_probe(client, settings)
    for method, path in [
        ("GET", f"/v1/experiments/{probe_id}"),
        ("GET", f"/v1/experiments/{probe_id}/metrics"),
        ("GET", f"/v1/experiments/{probe_id}/events"),
        ("GET", f"/v1/experiments/{probe_id}/artifacts"),
        ("POST", f"/v1/experiments/{probe_id}/cancel"),
    ]:
        response = client.request(method, path)
        assert_not_found(response)
        assert f"experiment {probe_id} not found" in response.json()["error"]["message"]
    # The refused cancel did not touch the probe: it can still be found and cancelled.
    assert client.get(f"/v1/probes/{probe_id}").json()["status"] == "queued"


def test_a_probe_streams_its_events_until_it_ends(client: TestClient, settings: Settings) -> None:
    _, probe_id = queued_probe(client, settings)
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        runs.claim_run(session, uuid.UUID(probe_id), "test-worker")
    with client.stream("GET", f"/v1/probes/{probe_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(response.iter_lines())
        assert next(frames) == ("status", "running")
        # The stream is open and polling: finishing the probe now must reach it.
        with sessions.begin() as session:
            runs.finish_run(session, uuid.UUID(probe_id), {"auc": 0.5}, worker="test-worker")
        assert list(frames) == [("status", "succeeded"), ("end", "succeeded")]


def sse_frames(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event name, the run's status in its data) for each frame of an SSE stream."""
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event is not None:
            yield event, json.loads(line.removeprefix("data: "))["status"]
            event = None


def test_a_queued_probe_can_be_cancelled_once(client: TestClient, settings: Settings) -> None:
    experiment_id = finished_experiment(client, settings, task="facts")
    probe_id = client.post(
        "/v1/probes", json={"experiment_id": experiment_id, "spec": {"kind": "loss_mia"}}
    ).json()["id"]
    cancelled = client.post(f"/v1/probes/{probe_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/v1/probes/{probe_id}/cancel").status_code == 409


def test_probes_that_cannot_run_on_a_kind_are_refused_at_submission(client: TestClient) -> None:
    cases = [
        # 8 + 8 tokens cannot be read and decoded by arithmetic's 9-token context.
        ({"kind": "capacity_tradeoff"}, {"kind": "extraction"}, "≤ 10"),
        # kg_memorization builds its vocabulary from its graph: without a reserve no
        # reference reads its items with the same ids.
        (
            {"kind": "kg_memorization"},
            {"kind": "reference_mia", "reference_experiment_id": str(uuid.uuid4())},
            'reference_data: "reserve"',
        ),
        ({"kind": "fictional_qa"}, {"kind": "exposure"}, "has no `canaries` field"),
    ]
    for spec, probe, expected in cases:
        response = client.post("/v1/experiments", json={"spec": {**spec, "probes": [probe]}})
        assert response.status_code == 422, response.text
        (detail,) = response.json()["error"]["details"]
        assert detail["path"] == "spec.probes.0"
        assert expected in detail["message"], detail
