"""A Reporter that writes a run's metrics, progress and checkpoints to the database.

Metrics are buffered and bulk-inserted; progress writes (which double as the heartbeat)
and cancellation checks are throttled, so a tight training loop costs the database a
few statements a second however fast it steps. Every write rides out a database outage
of up to `db_retry_s` seconds; the run blocks meanwhile rather than losing its data.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.training.checkpoint import list_checkpoints
from store import repository, runs
from store.artifacts import ArtifactStore
from store.db import transaction
from store.models import Run
from store.retry import retry_on_outage

log = logging.getLogger(__name__)
T = TypeVar("T")


class RunSupersededError(Exception):
    """The run is no longer this worker's (the reaper gave it to another, or it ended).

    Raised out of the training loop, so the trainer writes no checkpoint and the runner
    records nothing: the run's state belongs to whoever holds it now.
    """


MAX_BUFFERED_POINTS = 1000
PROGRESS_INTERVAL_S = 0.5


class DatabaseReporter:
    """Reporter for one experiment id, backed by a session factory and an artifact store.

    `should_stop` turns true when the run's cancel flag is set or once `deadline` (a
    `clock()` value) passes; `stop_reason` says which. When the run is no longer this
    worker's (`superseded` set by the heartbeat, or a progress write that matched no
    row), it raises RunSupersededError instead.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        artifacts: ArtifactStore,
        experiment_id: uuid.UUID,
        *,
        worker: str | None = None,
        superseded: threading.Event | None = None,
        flush_interval_s: float,
        cancel_check_interval_s: float,
        db_retry_s: float = 0.0,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.artifacts = artifacts
        self.experiment_id = experiment_id
        self.worker = worker
        self.superseded = superseded or threading.Event()
        self.flush_interval_s = flush_interval_s
        self.cancel_check_interval_s = cancel_check_interval_s
        self.db_retry_s = db_retry_s
        self.deadline = deadline
        self.clock = clock
        self.stop_reason: str | None = None
        self._buffer: list[tuple[int, str, float | None]] = []
        self._last_flush = clock()
        self._last_progress = float("-inf")
        self._last_cancel_check = float("-inf")

    def _write(self, what: str, work: Callable[[Session], T]) -> T:
        """Run `work` in a transaction, retrying through a database outage."""

        def attempt() -> T:
            with transaction(self.sessions) as session:
                return work(session)

        return retry_on_outage(attempt, budget_s=self.db_retry_s, what=what)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        # NaN and infinities are stored as NULL: the point is kept, the value marked missing.
        self._buffer.extend(
            (step, key, float(value) if math.isfinite(value) else None)
            for key, value in metrics.items()
        )
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        """Flush when the buffer is full or the flush interval has passed."""
        if (
            len(self._buffer) >= MAX_BUFFERED_POINTS
            or self.clock() - self._last_flush >= self.flush_interval_s
        ):
            self.flush()

    def flush(self) -> None:
        """Write every buffered metric point in one transaction."""
        if self._buffer:
            points = self._buffer
            self._write(
                "writing metrics",
                lambda session: repository.write_metrics(session, self.experiment_id, points),
            )
            self._buffer = []
        self._last_flush = self.clock()

    def flush_or_drop(self) -> None:
        """Flush on the way out of a failed run; points that cannot be written are dropped."""
        try:
            self.flush()
        except Exception:
            log.exception("dropping %d metric points of %s", len(self._buffer), self.experiment_id)
            self._buffer = []

    def progress(self, fraction: float, message: str = "") -> None:
        now = self.clock()
        if fraction < 1.0 and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        still_mine = self._write(
            "recording progress",
            lambda session: runs.record_progress(
                session, self.experiment_id, fraction, message, worker=self.worker
            ),
        )
        if not still_mine:
            self.superseded.set()
            raise RunSupersededError(f"experiment {self.experiment_id} is no longer ours")

    def checkpoint_dir(self) -> Path:
        return self.artifacts.checkpoint_dir(self.experiment_id)

    def checkpoint_saved(self, step: int, files: Sequence[Path]) -> None:
        # Metrics up to the checkpoint become durable with it: a resume never loses them.
        self.flush()
        kept_steps = [c.step for c in list_checkpoints(self.checkpoint_dir())]
        # Hash before opening the transaction: on SQLite it holds the database's write lock.
        described = [self.artifacts.describe(path) for path in files]

        def record(session: Session) -> None:
            for stored in described:
                repository.record_artifact(
                    session,
                    self.experiment_id,
                    kind="checkpoint",
                    step=step,
                    path=stored.relative_path,
                    size_bytes=stored.size_bytes,
                    sha256=stored.sha256,
                )
            repository.prune_checkpoint_artifacts(session, self.experiment_id, kept_steps)

        self._write("recording a checkpoint", record)

    def save_artifact(self, name: str, data: bytes) -> None:
        stored = self.artifacts.write(self.experiment_id, name, data)
        self._write(
            "recording an artifact",
            lambda session: repository.record_artifact(
                session,
                self.experiment_id,
                kind="artifact",
                step=None,
                path=stored.relative_path,
                size_bytes=stored.size_bytes,
                sha256=stored.sha256,
            ),
        )

    def should_stop(self) -> bool:
        if self.superseded.is_set():
            raise RunSupersededError(f"experiment {self.experiment_id} is no longer ours")
        now = self.clock()
        if self.stop_reason is None and self.deadline is not None and now >= self.deadline:
            self.stop_reason = "time limit"
        if self.stop_reason is None and self._cancel_asked(now):
            self.stop_reason = "cancelled"
        return self.stop_reason is not None

    def _cancel_asked(self, now: float) -> bool:
        """Whether the run's cancel flag is set, read at most every check interval."""
        if now - self._last_cancel_check < self.cancel_check_interval_s:
            return False
        self._last_cancel_check = now
        return self._write("checking for cancellation", self._cancel_requested)

    def _cancel_requested(self, session: Session) -> bool:
        return bool(
            session.scalar(select(Run.cancel_requested).where(Run.id == self.experiment_id))
        )
