"""The reaper: puts runs whose worker was lost back in the queue, and (re)publishes runs
the broker never got or lost.

A batched group is reaped as one unit: its row is what the reaper watches and publishes,
and its members follow it (back to the queue, or to the end it came to).

It is safe to run any number of reapers at once (every change is a conditional UPDATE,
and publishing a run twice only makes the second delivery a no-op). memlab runs one in
each API process (a process that never forks, unlike Celery's prefork worker) and
`memlab reaper` runs one on its own.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from store import runs
from store.db import transaction
from store.models import TERMINAL_STATUSES, Run, RunStatus, RunType, utcnow
from store.settings import Settings
from store.sweeps import still_waiting
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
    recover_lost: bool = True,
) -> ReapReport:
    """One pass: end runs past their wall-time limit, recover runs with a stale heartbeat
    (unless `recover_lost` is False), then publish queued runs that need it."""
    now = now or utcnow()
    report = ReapReport()
    requeued: dict[uuid.UUID, str] = {}
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
                requeued[experiment.id] = experiment.queue
            elif moved_to is not None:
                report.ended.append(experiment.id)
    report.requeued = list(requeued)
    if settings.dispatch == "fair":
        requeued = {}  # back in the queue unpublished: the fair dispatcher hands them out
    for experiment_id, queue in (
        _runs_to_publish(sessions, dispatcher, settings, now) | requeued
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


_HUNG_MESSAGE = (
    "time limit exceeded: the run went past its wall-time limit without stopping "
    "(its worker is hung or was lost); the last checkpoint is kept"
)


def watched_alone() -> ColumnElement[bool]:
    """Runs the reaper watches and publishes on their own: all but the members of a group
    that has not ended (they are watched, and published, as their group). A member left
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


def _runs_to_publish(
    sessions: sessionmaker[Session], dispatcher: Dispatcher, settings: Settings, now: datetime
) -> dict[uuid.UUID, str]:
    """Queued runs never published (past a grace period; not with fair dispatch, whose
    dispatcher publishes them), and queued runs unclaimed for too long whose queue is empty
    (their message was lost, e.g. with a Redis restart)."""
    unsent_before = now - timedelta(seconds=settings.unsent_grace_s)
    never_sent: ColumnElement[bool] = (Run.enqueued_at.is_(None)) & (Run.created_at < unsent_before)
    if settings.dispatch == "fair":
        never_sent = false()
    redeliver_before = now - timedelta(seconds=settings.redeliver_after_s)
    with sessions() as session:
        rows = session.execute(
            select(Run.id, Run.queue, Run.enqueued_at).where(
                Run.status == RunStatus.queued,
                watched_alone(),
                ~still_waiting(),  # a probe of shadow models waits for their sweep to end
                or_(never_sent, Run.enqueued_at < redeliver_before),
            )
        ).all()
    empty_queues: dict[str, bool] = {}
    chosen = {}
    for row in rows:
        if row.enqueued_at is not None:
            # While messages wait in the queue, this run's is most likely among them.
            if row.queue not in empty_queues:
                empty_queues[row.queue] = dispatcher.queue_length(row.queue) == 0
            if not empty_queues[row.queue]:
                continue
        chosen[row.id] = row.queue
    return chosen


class ReaperThread(threading.Thread):
    """Calls `reap` every `settings.reaper_interval_s` until stopped; never dies of an error.

    Lost-run recovery waits until the database has answered for a full
    `heartbeat_stale_s`: after an outage, workers need that long to beat again, and
    their silence during the outage is not a sign they died.
    """

    def __init__(
        self, sessions: sessionmaker[Session], dispatcher: Dispatcher, settings: Settings
    ) -> None:
        super().__init__(name="memlab-reaper", daemon=True)
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.settings = settings
        self._stop_event = threading.Event()
        self._healthy_since = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.reaper_interval_s):
            settled = time.monotonic() - self._healthy_since >= self.settings.heartbeat_stale_s
            try:
                reap(self.sessions, self.dispatcher, self.settings, recover_lost=settled)
            except Exception as error:  # a database outage: try again next interval
                log.warning("reaper pass failed (will retry): %s", error)
                self._healthy_since = time.monotonic()

    def stop(self) -> None:
        self._stop_event.set()
