"""A background thread that keeps a running run's heartbeat fresh, even through long evals."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from store import runs
from store.db import transaction

log = logging.getLogger(__name__)


class Heartbeat:
    """`with Heartbeat(...):` beats every `interval_s` while the block runs.

    When a beat matches no row, the run is no longer this worker's: `superseded` is set
    and beating stops.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        experiment_id: uuid.UUID,
        worker: str,
        interval_s: float,
        superseded: threading.Event | None = None,
        beat: Callable[[Session, uuid.UUID, str], bool] = runs.heartbeat,
    ) -> None:
        """`beat` refreshes the heartbeat in a session; False when the run is not this
        worker's any more (a batched group beats for its members too)."""
        self.sessions = sessions
        self.experiment_id = experiment_id
        self.worker = worker
        self.interval_s = interval_s
        self.superseded = superseded or threading.Event()
        self.beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="memlab-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with transaction(self.sessions) as session:
                    still_mine = self.beat(session, self.experiment_id, self.worker)
            except Exception as error:  # the database is down: the next beat may succeed
                log.warning("heartbeat for %s failed: %s", self.experiment_id, error)
                continue
            if not still_mine:
                log.warning("experiment %s is no longer ours; stopping", self.experiment_id)
                self.superseded.set()
                return
