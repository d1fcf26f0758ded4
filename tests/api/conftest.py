"""An API client over a real database and broker: SQLite + file broker, or PostgreSQL + Redis."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory
from store.identity import create_user
from store.settings import Settings
from worker.celery_config import create_celery, node_queue
from worker.fair_dispatch import dispatch_pass

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import register_node

REDIS_TEST_DB = 13
TEST_NODE = "test@box"  # the node `hand_out` registers
TEST_NODE_QUEUE = node_queue(TEST_NODE)  # where the dispatcher sends it runs


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
        for name in ("cpu", "gpu", TEST_NODE_QUEUE):
            connection.SimpleQueue(name).clear()
    yield celery


@pytest.fixture
def client(settings: Settings, broker: Celery) -> Iterator[TestClient]:
    with TestClient(create_app(settings, run_reaper=False)) as test_client:
        yield test_client


def hand_out(client: TestClient, queues: tuple[str, ...] = ("cpu", "gpu")) -> None:
    """One dispatcher pass of the client's app, with a live node `TEST_NODE` free on
    `queues`: what it accepted of those queues reaches the broker, on the node's own
    queue (`TEST_NODE_QUEUE`)."""
    app = client.app
    register_node(app.state.sessions, TEST_NODE, queues)  # type: ignore[attr-defined]
    dispatch_pass(app.state.sessions, app.state.dispatcher, app.state.settings)  # type: ignore[attr-defined]


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


# With authentication on: a server that needs keys, and users who hold them.


@pytest.fixture
def secured(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings of a server with authentication on (on loopback, as the dashboard's tests)."""
    broker = (
        f"sqla+sqlite:///{tmp_path / 'broker.db'}"
        if database_url.startswith("sqlite")
        else f"{request.getfixturevalue('redis_server_url')}/{REDIS_TEST_DB}"
    )
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        broker_url=broker,
        events_poll_interval_s=0.05,
        auth="on",
    )


@pytest.fixture
def app_client(secured: Settings) -> Iterator[TestClient]:
    """A client of the secured server; each request names its key (`as_user`)."""
    with TestClient(create_app(secured, run_reaper=False)) as test_client:
        yield test_client


def sessions_of(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.resolved_database_url))


@pytest.fixture
def keys(secured: Settings) -> dict[str, Any]:
    """Two users, ada and bob, each with a personal project and a key."""
    found: dict[str, Any] = {}
    with sessions_of(secured).begin() as session:
        for name in ("ada", "bob"):
            user, issued = create_user(session, name)
            found[name] = {"user": user.id, "key": issued.key, "key_id": issued.id}
    return found


def as_user(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
