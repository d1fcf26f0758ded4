"""An in-process memlab for the CLI: the real API app on a temporary SQLite database, the
SDK pointed at it through a TestClient, and, where a test needs runs to finish, a worker
that executes each run the app's dispatcher hands it (`worker.runner.execute_run`) in a
thread of this process, registered as a node so that the dispatcher sees its slots.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner, Result

import memlab_client.cli as cli
from memlab_client.sdk import MemlabClient
from store.artifacts import ArtifactStore
from store.db import make_engine, make_session_factory, migrate
from store.models import TERMINAL_STATUSES, Run
from store.settings import Settings
from worker.runner import RunContext, execute_run

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import register_node

# Wide enough that no table cell wraps, so a test can look for a whole line of output.
OUTPUT_WIDTH = 200


@dataclass
class ThreadWorker:
    """A `worker.dispatch.Dispatcher` that runs each run it is handed in a new thread,
    through the same `execute_run` a Celery worker calls (auto probes included)."""

    context: RunContext | None = None  # None: an idle worker; runs stay queued
    threads: list[threading.Thread] = field(default_factory=list)

    def enqueue(self, experiment_id: uuid.UUID, queue: str) -> bool:
        if self.context is not None:
            thread = threading.Thread(target=execute_run, args=(self.context, experiment_id))
            thread.start()
            self.threads.append(thread)
        return True

    def ping(self) -> bool:
        return True

    def queue_length(self, queue: str) -> int | None:
        return 0

    def join(self, timeout_s: float = 120.0) -> None:
        """Wait until every run submitted so far has ended: the dispatcher hands runs out
        after the submission returns, so the threads to join may not have started yet."""
        deadline = time.monotonic() + timeout_s
        while True:
            for thread in list(self.threads):
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if self.context is None or not self._unfinished() or time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def _unfinished(self) -> bool:
        assert self.context is not None
        with self.context.sessions() as session:
            unfinished = select(Run.id).where(Run.status.not_in(list(TERMINAL_STATUSES)))
            return session.scalar(unfinished.limit(1)) is not None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(
        data_dir=tmp_path,
        events_poll_interval_s=0.02,
        dispatch_interval_s=0.05,
        heartbeat_stale_s=3600,  # the thread worker's node never beats: live all test long
    )
    settings.ensure_dirs()
    migrate(settings.resolved_database_url)
    return settings


@pytest.fixture
def worker(settings: Settings) -> Iterator[ThreadWorker]:
    """A worker that runs every submitted run at once; request it before `memlab`."""
    engine = make_engine(settings.resolved_database_url)
    context = RunContext(
        sessions=make_session_factory(engine),
        artifacts=ArtifactStore(settings.resolved_artifact_dir),
        worker_name="cli-test@box:00000000",  # a process of the node `memlab` registers
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
    )
    running = ThreadWorker(context)
    yield running
    running.join()
    engine.dispose()


@pytest.fixture
def memlab(settings: Settings, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The API app, with the `worker` fixture's worker if the test asks for it (and the
    dispatcher that hands it runs), else idle: runs stay queued."""
    dispatcher = (
        request.getfixturevalue("worker") if "worker" in request.fixturenames else ThreadWorker()
    )
    working = dispatcher.context is not None
    if working:
        register_node(
            make_session_factory(make_engine(settings.resolved_database_url)), "cli-test@box"
        )
    with TestClient(create_app(settings, dispatcher=dispatcher, run_reaper=working)) as http:
        yield http


@pytest.fixture
def sdk(memlab: TestClient) -> MemlabClient:
    return MemlabClient(str(memlab.base_url), http=memlab)


@pytest.fixture
def run_cli(memlab: TestClient, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """`run_cli("ls", "--limit", "5")`: the `memlab` command against the in-process app."""
    monkeypatch.setattr(cli, "_connect", lambda url: MemlabClient(url, http=memlab))
    monkeypatch.setattr(cli, "console", Console(width=OUTPUT_WIDTH))
    monkeypatch.setattr(
        cli, "err_console", Console(width=OUTPUT_WIDTH, stderr=True, soft_wrap=True)
    )
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli.app, list(args))

    return invoke
