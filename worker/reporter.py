"""A Reporter that writes a run's metrics, progress and checkpoints to the database.

Metrics are buffered and bulk-inserted; progress writes (which double as the heartbeat)
and cancellation checks are throttled, so a tight training loop costs the database a
few statements a second however fast it steps.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.training.checkpoint import list_checkpoints
from store import repository, runs
from store.artifacts import ArtifactStore
from store.db import transaction
from store.models import Experiment

log = logging.getLogger(__name__)
_MAX_BUFFERED_POINTS = 1000
_PROGRESS_INTERVAL_S = 0.5


class DatabaseReporter:
    """Reporter for one experiment id, backed by a session factory and an artifact store."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        artifacts: ArtifactStore,
        experiment_id: uuid.UUID,
        *,
        flush_interval_s: float,
        cancel_check_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.artifacts = artifacts
        self.experiment_id = experiment_id
        self.flush_interval_s = flush_interval_s
        self.cancel_check_interval_s = cancel_check_interval_s
        self.clock = clock
        self._buffer: list[tuple[int, str, float | None]] = []
        self._last_flush = clock()
        self._last_progress = float("-inf")
        self._last_cancel_check = float("-inf")
        self._cancel_requested = False

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self._buffer.extend(
            (step, key, float(value) if math.isfinite(value) else None)
            for key, value in metrics.items()
        )
        if (
            len(self._buffer) >= _MAX_BUFFERED_POINTS
            or self.clock() - self._last_flush >= self.flush_interval_s
        ):
            self.flush()

    def flush(self) -> None:
        """Write every buffered metric point in one transaction."""
        if self._buffer:
            with transaction(self.sessions) as session:
                repository.write_metrics(session, self.experiment_id, self._buffer)
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
        if fraction < 1.0 and now - self._last_progress < _PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        with transaction(self.sessions) as session:
            runs.record_progress(session, self.experiment_id, fraction, message)

    def checkpoint_dir(self) -> Path:
        return self.artifacts.checkpoint_dir(self.experiment_id)

    def checkpoint_saved(self, step: int, files: Sequence[Path]) -> None:
        # Metrics up to the checkpoint become durable with it: a resume never loses them.
        self.flush()
        kept_steps = [c.step for c in list_checkpoints(self.checkpoint_dir())]
        # Hash before opening the transaction: on SQLite it holds the database's write lock.
        described = [self.artifacts.describe(path) for path in files]
        with transaction(self.sessions) as session:
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

    def save_artifact(self, name: str, data: bytes) -> None:
        stored = self.artifacts.write(self.experiment_id, name, data)
        with transaction(self.sessions) as session:
            repository.record_artifact(
                session,
                self.experiment_id,
                kind="artifact",
                step=None,
                path=stored.relative_path,
                size_bytes=stored.size_bytes,
                sha256=stored.sha256,
            )

    def should_stop(self) -> bool:
        now = self.clock()
        if (
            not self._cancel_requested
            and now - self._last_cancel_check >= self.cancel_check_interval_s
        ):
            self._last_cancel_check = now
            with self.sessions() as session:
                self._cancel_requested = bool(
                    session.scalar(
                        select(Experiment.cancel_requested).where(
                            Experiment.id == self.experiment_id
                        )
                    )
                )
        return self._cancel_requested
