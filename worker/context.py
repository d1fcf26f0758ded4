"""What a worker process holds to execute runs, and what it reads of a run it claimed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from store.artifacts import ArtifactStore
from store.db import transaction
from store.models import RunType
from store.retry import retry_on_outage
from worker.reporter import DatabaseReporter

T = TypeVar("T")


@dataclass(frozen=True)
class RunContext:
    """What a worker process needs to execute runs."""

    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    worker_name: str
    flush_interval_s: float = 2.0
    cancel_check_interval_s: float = 1.0
    heartbeat_interval_s: float = 10.0
    db_retry_s: float = 0.0
    max_wall_s: int | None = None

    def write(self, what: str, work: Callable[[Session], T]) -> T:
        """Run `work` in a transaction, retrying through a database outage."""

        def attempt() -> T:
            with transaction(self.sessions) as session:
                return work(session)

        return retry_on_outage(attempt, budget_s=self.db_retry_s, what=what)

    def reporter(
        self, run_id: uuid.UUID, superseded: threading.Event, deadline: float | None
    ) -> DatabaseReporter:
        """The reporter through which a run this worker holds writes its metrics,
        progress and checkpoints; `superseded` is set when the run is taken back."""
        return DatabaseReporter(
            self.sessions,
            self.artifacts,
            run_id,
            worker=self.worker_name,
            superseded=superseded,
            flush_interval_s=self.flush_interval_s,
            cancel_check_interval_s=self.cancel_check_interval_s,
            db_retry_s=self.db_retry_s,
            deadline=deadline,
        )


@dataclass(frozen=True)
class ClaimedRun:
    """What a worker reads of a run it now holds."""

    spec: dict[str, Any]
    run_type: RunType
    target_id: uuid.UUID | None
    queue: str
