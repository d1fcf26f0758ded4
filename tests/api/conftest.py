"""An API client over a real database and broker: SQLite + file broker, or PostgreSQL + Redis."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from store.settings import Settings
from worker.celery_config import create_celery

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from api.app import create_app

REDIS_TEST_DB = 13


@pytest.fixture
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if database_url.startswith("sqlite"):
        broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    else:
        broker = f"{request.getfixturevalue('redis_server_url')}/{REDIS_TEST_DB}"
    return Settings(
        data_dir=tmp_path, database_url=database_url, broker_url=broker, events_poll_interval_s=0.05
    )


@pytest.fixture
def broker(settings: Settings) -> Iterator[Celery]:
    """The Celery app the API publishes through, with its queues emptied first."""
    celery = create_celery(settings)
    with celery.connection_for_write() as connection:
        for name in ("cpu", "gpu"):
            connection.SimpleQueue(name).clear()
    yield celery


@pytest.fixture
def client(settings: Settings, broker: Celery) -> Iterator[TestClient]:
    with TestClient(create_app(settings, run_reaper=False)) as test_client:
        yield test_client


def published_ids(celery: Celery, queue: str) -> list[str]:
    """Consume every message on `queue` and return the experiment ids they carry."""
    ids = []
    with celery.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue)
        while True:
            try:
                message = simple.get(block=True, timeout=0.5)
            except simple.Empty:
                return ids
            assert message.headers["task"] == "memlab.run_experiment"
            ids.append(message.payload[0][0])
            message.ack()
