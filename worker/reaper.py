"""The reaper: puts runs whose worker was lost back in the queue, and (re)publishes runs
the broker never got or lost.

It is safe to run any number of reapers at once (every change is a conditional UPDATE,
and publishing a run twice only makes the second delivery a no-op). memlab runs one in
each API process (a process that never forks, unlike Celery's prefork worker) and
`memlab reaper` runs one on its own.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from store import runs
from store.db import transaction
from store.models import Experiment, RunStatus, utcnow
from store.settings import Settings
from worker.dispatch import Dispatcher

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    """What one pass did, by experiment id."""

    requeued: list[uuid.UUID] = field(default_factory=list)
    ended: list[uuid.UUID] = field(default_factory=list)
    published: list[uuid.UUID] = field(default_factory=list)


def reap(
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    settings: Settings,
    now: datetime | None = None,
) -> ReapReport:
    """One pass: recover runs with a stale heartbeat, then publish queued runs that need it."""
    now = now or utcnow()
    report = ReapReport()
    stale_before = now - timedelta(seconds=settings.heartbeat_stale_s)
    requeued: dict[uuid.UUID, str] = {}
    with transaction(sessions) as session:
        lost = session.scalars(
            select(Experiment).where(
                Experiment.status == RunStatus.running, Experiment.heartbeat_at < stale_before
            )
        ).all()
        for experiment in lost:
            moved_to = runs.recover_lost_run(
                session, experiment, stale_before, settings.max_attempts
            )
            if moved_to is RunStatus.queued:
                requeued[experiment.id] = experiment.queue
            elif moved_to is not None:
                report.ended.append(experiment.id)
    report.requeued = list(requeued)
    for experiment_id, queue in (
        dict(_runs_to_publish(sessions, settings, now)) | requeued
    ).items():
        if dispatcher.enqueue(experiment_id, queue):
            with transaction(sessions) as session:
                runs.mark_enqueued(session, experiment_id)
            report.published.append(experiment_id)
    if report.requeued or report.ended or report.published:
        log.info(
            "reaper: requeued %d, ended %d, published %d",
            len(report.requeued),
            len(report.ended),
            len(report.published),
        )
    return report


def _runs_to_publish(
    sessions: sessionmaker[Session], settings: Settings, now: datetime
) -> list[tuple[uuid.UUID, str]]:
    """Queued runs never published (past a grace period) or unclaimed for too long."""
    unsent_before = now - timedelta(seconds=settings.unsent_grace_s)
    redeliver_before = now - timedelta(seconds=settings.redeliver_after_s)
    with sessions() as session:
        rows = session.execute(
            select(Experiment.id, Experiment.queue).where(
                Experiment.status == RunStatus.queued,
                or_(
                    (Experiment.enqueued_at.is_(None)) & (Experiment.created_at < unsent_before),
                    Experiment.enqueued_at < redeliver_before,
                ),
            )
        ).all()
    return [(row.id, row.queue) for row in rows]


class ReaperThread(threading.Thread):
    """Calls `reap` every `settings.reaper_interval_s` until stopped; never dies of an error."""

    def __init__(
        self, sessions: sessionmaker[Session], dispatcher: Dispatcher, settings: Settings
    ) -> None:
        super().__init__(name="memlab-reaper", daemon=True)
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.settings = settings
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.reaper_interval_s):
            try:
                reap(self.sessions, self.dispatcher, self.settings)
            except Exception as error:  # a database outage: try again next interval
                log.warning("reaper pass failed (will retry): %s", error)

    def stop(self) -> None:
        self._stop_event.set()
