"""The reaper: ends runs past their wall-time limit and puts runs whose worker was lost
back in the queue. It publishes nothing: a run it requeues is unpublished again, and the
dispatcher (worker/fair_dispatch.py), the one place that decides what reaches the
broker, hands it out like any queued run.

A batched group is reaped as one unit: its row is what the reaper watches, and its
members follow it (back to the queue, or to the end it came to).

It is safe to run any number of reapers at once (every change is a conditional UPDATE).
memlab runs one in each API process (a process that never forks, unlike Celery's prefork
worker) and `memlab reaper` runs one on its own.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from store import runs
from store.db import transaction
from store.models import TERMINAL_STATUSES, Run, RunStatus, RunType, utcnow
from store.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    """What one pass did, by experiment id."""

    requeued: list[uuid.UUID] = field(default_factory=list)
    ended: list[uuid.UUID] = field(default_factory=list)


def reap(
    sessions: sessionmaker[Session],
    settings: Settings,
    now: datetime | None = None,
    recover_lost: bool = True,
) -> ReapReport:
    """One pass: end runs past their wall-time limit, and recover runs with a stale
    heartbeat (unless `recover_lost` is False)."""
    now = now or utcnow()
    report = ReapReport()
    with transaction(sessions) as session:
        running = session.scalars(
            select(Run).where(Run.status == RunStatus.running, watched_alone())
        )
        stale_before = now - timedelta(seconds=settings.heartbeat_stale_s)
        for experiment in running.all():
            if _past_wall_limit(experiment, settings, now):
                if runs.fail_run(session, experiment.id, _HUNG_MESSAGE):
                    _settle_members(session, experiment, RunStatus.failed, _HUNG_MESSAGE)
                    report.ended.append(experiment.id)
                continue
            if not recover_lost or not (
                experiment.heartbeat_at and experiment.heartbeat_at < stale_before
            ):
                continue
            moved_to = runs.recover_lost_run(
                session, experiment, stale_before, settings.max_attempts
            )
            if moved_to is not None:
                _settle_members(session, experiment, moved_to, _LOST_GROUP_MESSAGE)
            if moved_to is RunStatus.queued:
                report.requeued.append(experiment.id)
            elif moved_to is not None:
                report.ended.append(experiment.id)
    if report.requeued or report.ended:
        log.info("reaper: requeued %d, ended %d", len(report.requeued), len(report.ended))
    return report


_HUNG_MESSAGE = (
    "time limit exceeded: the run went past its wall-time limit without stopping "
    "(its worker is hung or was lost); the last checkpoint is kept"
)


def watched_alone() -> ColumnElement[bool]:
    """Runs watched and handed out on their own: all but the members of a group that has
    not ended (they are watched, and handed out, as their group). A member left
    unfinished by a group that ended is recovered as a solo run."""
    group = aliased(Run)
    group_over = (
        select(group.id)
        .where(group.id == Run.group_id, group.status.in_(list(TERMINAL_STATUSES)))
        .exists()
    )
    return or_(Run.group_id.is_(None), group_over)


_LOST_GROUP_MESSAGE = "the worker running its batched group was lost"


def _settle_members(session: Session, run: Run, moved_to: RunStatus, message: str) -> None:
    if run.run_type is RunType.group:
        runs.settle_group_members(session, run.id, moved_to, message)


def _past_wall_limit(experiment: Run, settings: Settings, now: datetime) -> bool:
    """Running longer than its limit plus the heartbeat grace: the worker did not stop it."""
    limit = runs.wall_limit_s(experiment.spec, settings.max_wall_s)
    if experiment.started_at is None or limit is None:
        return False
    return experiment.started_at + timedelta(seconds=limit + settings.heartbeat_stale_s) < now


class ReaperThread(threading.Thread):
    """Calls `reap` every `settings.reaper_interval_s` until stopped; never dies of an error.

    Lost-run recovery waits until the database has answered for a full
    `heartbeat_stale_s`: after an outage, workers need that long to beat again, and
    their silence during the outage is not a sign they died.
    """

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        super().__init__(name="memlab-reaper", daemon=True)
        self.sessions = sessions
        self.settings = settings
        self._stop_event = threading.Event()
        self._healthy_since = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.reaper_interval_s):
            settled = time.monotonic() - self._healthy_since >= self.settings.heartbeat_stale_s
            try:
                reap(self.sessions, self.settings, recover_lost=settled)
            except Exception as error:  # a database outage: try again next interval
                log.warning("reaper pass failed (will retry): %s", error)
                self._healthy_since = time.monotonic()

    def stop(self) -> None:
        self._stop_event.set()
