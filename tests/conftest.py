"""Shared fixtures: real databases (SQLite and PostgreSQL), real brokers, tiny specs.

PostgreSQL and Redis come from MEMLAB_TEST_POSTGRES_URL and MEMLAB_TEST_REDIS_URL
(defaults: the local servers). Without them the tests that need them are skipped,
unless MEMLAB_REQUIRE_SERVICES=1 (set by .ci/run), which turns a missing server into
a failure so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

import core.catalog  # noqa: F401  (every kind and probe registered, so probe specs parse)
from store.db import make_engine, make_session_factory, migrate
from store.identity import ensure_local_identity
from store.models import Base

POSTGRES_ADMIN_URL = os.environ.get(
    "MEMLAB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MEMLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REQUIRE_SERVICES = os.environ.get("MEMLAB_REQUIRE_SERVICES") == "1"


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable: {error}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (MEMLAB_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@contextmanager
def empty_postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database named `prefix`_<random>, dropped on
    exit; skips (or fails, under MEMLAB_REQUIRE_SERVICES=1) when the server is down."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        _unavailable("PostgreSQL", error)
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    with empty_postgres_database("memlab_test") as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis server, checked to answer."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as error:
        _unavailable("Redis", error)
    return REDIS_URL


def _truncate_all(url: str) -> None:
    """Empty every table, then put back the built-in local user and project that the
    migration made (every run belongs to a project)."""
    engine = make_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    with Session(engine) as session, session.begin():
        ensure_local_identity(session)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: SQLite in a temp folder, or the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'memlab.db'}"
        migrate(url)
        yield url
    else:
        url = request.getfixturevalue("postgres_server_url")
        _truncate_all(url)
        yield url
        _truncate_all(url)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def register_node(
    sessions: sessionmaker[Session],
    name: str,
    queues: tuple[str, ...] = ("cpu", "gpu"),
    slots: int = 100,
) -> None:
    """A live worker node in the registry, as `memlab worker` writes it when it starts:
    the dispatcher hands it runs of `queues`, up to `slots` at once (it never beats: it
    stays live for `heartbeat_stale_s`)."""
    from store import workers

    with sessions.begin() as session:
        workers.register(
            session, workers.Registration(name, "box", 1, list(queues), [], slots, "t")
        )


def tiny_capacity_spec(**overrides: Any) -> dict[str, Any]:
    """A capacity_tradeoff spec that trains in a second or two on a CPU."""
    train = {
        "steps": 60,
        "batch_size": 32,
        "warmup_steps": 5,
        "eval_every": 20,
        "checkpoint_every": 30,
        "device": "cpu",
    }
    train.update(overrides.pop("train", {}))
    return {"kind": "capacity_tradeoff", "train": train, **overrides}


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """For modules of tiny models and matrices: a second torch thread only adds contention
    on a shared CPU. Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
