"""GET /metrics read back by the Prometheus text parser: what it exports is what the
database holds and what the API answered."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.metrics_database import DatabaseCollector
from store import runs
from store.db import make_engine, make_session_factory
from store.models import Run, Worker
from store.settings import Settings
from tests.api.conftest import TEST_NODE, hand_out
from tests.conftest import tiny_capacity_spec

REQUESTS = "memlab_http_request_duration_seconds"


def scrape(client: TestClient) -> list[Sample]:
    """Every sample /metrics exports now, as the Prometheus parser reads them."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The value of the one sample called `name` with exactly `labels`."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, [s for s in samples if s.name == name])
    return found[0]


def names(samples: list[Sample]) -> set[str]:
    return {sample.name for sample in samples}


def submit(client: TestClient, **spec: Any) -> str:
    response = client.post("/v1/experiments", json={"spec": tiny_capacity_spec(**spec)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def sessions_of_app(client: TestClient) -> sessionmaker[Session]:
    return client.app.state.sessions  # type: ignore[attr-defined]


def run_to_the_end(sessions: sessionmaker[Session], run_id: str) -> None:
    """What a worker does to a run it trains: claim it, then finish it."""
    with sessions.begin() as session:
        assert runs.claim_run(session, uuid.UUID(run_id), f"{TEST_NODE}:00000001")
    with sessions.begin() as session:
        assert runs.finish_run(session, uuid.UUID(run_id), {"loss": 0.5}, f"{TEST_NODE}:00000001")


def runs_gauge(samples: list[Sample], status: str) -> float:
    return value(
        samples, "memlab_runs", status=status, kind="capacity_tradeoff", run_type="experiment"
    )


def test_runs_and_queue_depths_are_those_the_database_holds(
    client: TestClient, broker: Celery
) -> None:
    first, _second = submit(client), submit(client)
    submit(client, train={"device": "cuda"})
    samples = scrape(client)
    assert value(samples, "memlab_database_up") == 1
    assert runs_gauge(samples, "queued") == 3
    assert runs_gauge(samples, "succeeded") == 0
    assert value(samples, "memlab_queue_depth", queue="cpu") == 2
    assert value(samples, "memlab_queue_depth", queue="gpu") == 1
    assert "memlab_run_duration_seconds_count" not in names(samples)
    assert "memlab_dispatch_latency_seconds_count" not in names(samples)

    hand_out(client)
    run_to_the_end(sessions_of_app(client), first)
    samples = scrape(client)
    assert (runs_gauge(samples, "queued"), runs_gauge(samples, "succeeded")) == (2, 1)
    assert value(samples, "memlab_queue_depth", queue="cpu") == 1
    duration = {"status": "succeeded", "run_type": "experiment"}
    assert value(samples, "memlab_run_duration_seconds_count", **duration) == 1
    assert value(samples, "memlab_dispatch_latency_seconds_count", queue="cpu") == 1
    assert value(samples, "memlab_dispatch_latency_seconds_bucket", queue="cpu", le="+Inf") == 1
    assert value(samples, "memlab_queue_wait_seconds_count", queue="cpu") == 1

    # A run is counted once, however many scrapes see it.
    samples = scrape(client)
    assert value(samples, "memlab_run_duration_seconds_count", **duration) == 1
    assert value(samples, "memlab_dispatch_latency_seconds_count", queue="cpu") == 1


def test_a_start_committed_after_a_later_one_was_read_still_counts(
    client: TestClient, broker: Celery
) -> None:
    early, late = submit(client), submit(client)
    hand_out(client)
    sessions = sessions_of_app(client)
    run_to_the_end(sessions, late)
    assert value(scrape(client), "memlab_dispatch_latency_seconds_count", queue="cpu") == 1
    # The other run's claim is stamped before the run just counted, as when a worker's
    # transaction commits after another's.
    with sessions.begin() as session:
        assert runs.claim_run(session, uuid.UUID(early), f"{TEST_NODE}:00000002")
        stamp = session.get(Run, uuid.UUID(late))
        assert stamp is not None and stamp.started_at is not None
        session.execute(
            update(Run)
            .where(Run.id == uuid.UUID(early))
            .values(started_at=stamp.started_at - timedelta(milliseconds=1))
        )
    assert value(scrape(client), "memlab_dispatch_latency_seconds_count", queue="cpu") == 2


def test_a_new_process_counts_only_what_happens_after_it_started(
    client: TestClient, broker: Celery, settings: Settings
) -> None:
    run_to_the_end(sessions_of_app(client), submit(client))
    with TestClient(create_app(settings, run_reaper=False)) as restarted:
        samples = scrape(restarted)
    assert runs_gauge(samples, "succeeded") == 1
    assert "memlab_run_duration_seconds_count" not in names(samples)
    assert "memlab_dispatch_latency_seconds_count" not in names(samples)


def test_request_latency_is_labelled_by_route_template_never_by_raw_path(
    client: TestClient, broker: Celery
) -> None:
    run_id = submit(client)
    submit(client)
    assert client.get(f"/v1/experiments/{run_id}").status_code == 200
    assert client.get(f"/v1/experiments/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/no/such/{run_id}").status_code == 404
    samples = scrape(client)
    count = f"{REQUESTS}_count"
    assert value(samples, count, method="POST", route="/v1/experiments", status="201") == 2
    one = "/v1/experiments/{experiment_id}"
    assert value(samples, count, method="GET", route=one, status="200") == 1
    assert value(samples, count, method="GET", route=one, status="404") == 1
    assert value(samples, count, method="GET", route="unmatched", status="404") == 1
    routes = {s.labels["route"] for s in samples if s.name.startswith(REQUESTS)}
    assert not [route for route in routes if run_id in route], routes


def test_metrics_answer_without_a_key_when_authentication_is_on(app_client: TestClient) -> None:
    assert app_client.get("/v1/experiments").status_code == 401
    samples = scrape(app_client)
    count = f"{REQUESTS}_count"
    assert value(samples, count, method="GET", route="/v1/experiments", status="401") == 1
    assert value(samples, "memlab_database_up") == 1
    assert "/metrics" not in app_client.app.openapi()["paths"]  # type: ignore[attr-defined]


def test_a_database_that_cannot_be_read_is_reported_not_raised(tmp_path: Path) -> None:
    # A database file without the schema: every query fails.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    metrics = list(DatabaseCollector(make_session_factory(engine), stale_s=60).collect())
    engine.dispose()
    assert [(m.name, [s.value for s in m.samples]) for m in metrics] == [
        ("memlab_database_up", [0])
    ]


def test_workers_and_their_busy_slots_are_those_the_registry_holds(client: TestClient) -> None:
    from store import workers

    sessions = sessions_of_app(client)
    run_id = submit(client)
    with sessions.begin() as session:
        for name, concurrency in (("a@box", 2), ("b@box", 1)):
            workers.register(
                session,
                workers.Registration(name, "box", 1, ["cpu"], [], concurrency, "test"),
            )
        runs.claim_run(session, uuid.UUID(run_id), "a@box:0a1b2c3d")
        silent = session.get(Worker, "b@box")
        assert silent is not None
        silent.heartbeat_at -= timedelta(hours=1)
    samples = scrape(client)
    assert value(samples, "memlab_workers", state="live") == 1
    assert value(samples, "memlab_workers", state="silent") == 1
    assert value(samples, "memlab_worker_slots", state="busy") == 1
    assert (
        value(samples, "memlab_worker_slots", state="idle") == 1
    )  # the silent node's slot is not counted
