"""An in-process memlab for the CLI: the real API app on a temporary SQLite database, the
SDK pointed at it through a TestClient, and, where a test needs runs to finish, a worker
that executes each published run (`worker.runner.execute_run`) in a thread of this process.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

import memlab_client.cli as cli
from memlab_client.sdk import MemlabClient
from store.artifacts import ArtifactStore
from store.db import make_engine, make_session_factory, migrate
from store.settings import Settings
from worker.runner import RunContext, execute_run

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from api.app import create_app

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

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, events_poll_interval_s=0.02)
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
        worker_name="cli-test",
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
    )
    running = ThreadWorker(context)
    yield running
    running.join()
    engine.dispose()


@pytest.fixture
def memlab(settings: Settings, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The API app, with the `worker` fixture's worker if the test asks for it, else idle."""
    dispatcher = (
        request.getfixturevalue("worker") if "worker" in request.fixturenames else ThreadWorker()
    )
    with TestClient(create_app(settings, dispatcher=dispatcher, run_reaper=False)) as http:
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
