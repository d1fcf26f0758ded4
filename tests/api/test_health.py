"""Readiness reports the database and broker it really depends on."""

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from store.db import migrate
from store.settings import Settings


def test_healthz_and_readyz_when_everything_is_up(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_with_retry_after_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    settings = Settings(data_dir=tmp_path, database_url=url, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["checks"] == {"database": "ok", "broker": "down"}
        # A submission is still accepted: the database is the source of truth.
        created = client.post("/v1/experiments", json={"spec": {"kind": "capacity_tradeoff"}})
        assert created.status_code == 201
        assert created.json()["status"] == "queued" and created.json()["enqueued_at"] is None


def test_a_database_outage_is_a_503_with_retry_after(tmp_path: Path) -> None:
    # PostgreSQL on loopback port 1: nothing listens, every connection is refused.
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://memlab@127.0.0.1:1/memlab?connect_timeout=2",
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
    )
    with TestClient(create_app(settings)) as client:
        for method, path in [("GET", "/v1/experiments"), ("POST", "/v1/experiments")]:
            body = {"spec": {"kind": "capacity_tradeoff"}} if method == "POST" else None
            response = client.request(method, path, json=body)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            assert response.json()["error"]["code"] == "database_unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == "down"
